-- Redemptions (two-phase). KEYS[1] = "ledger:{org}:".
-- ARGV: op, now_ms, redemption id, then per op:
--   create:  person, reward, points, expire_ms, request_id
--   fulfill: event header, TF transfer fields (earned -> rewards)
--   cancel:  (nothing)
-- Returns {code, n1, n2, HGETALL of the redemption}.
local op, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local key = P .. 'rdm:' .. id

local function reply(code, n1, n2)
  return {code, n1, n2, redis.call('HGETALL', key)}
end

if op == 'create' then
  local person, reward, points = ARGV[4], ARGV[5], ARGV[6]
  local held = held_points(person, now)
  if redis.call('EXISTS', key) == 1 then
    local stored = redis.call('HMGET', key, 'reward', 'points')
    if stored[1] ~= reward or stored[2] ~= points then return reply('CONFLICT', 0, 0) end
    return reply('OK', 0, 0)
  end
  local balance = num(redis.call('HGET', P .. 'bal', 'earned:' .. person))
  if balance - held < tonumber(points) then return reply('FUNDS', balance, held) end
  redis.call('HSET', key, 'person', person, 'reward', reward, 'points', points,
             'state', 'PENDING', 'create_ms', ARGV[2], 'expire_ms', ARGV[7],
             'request_id', ARGV[8])
  redis.call('ZADD', P .. 'holds:' .. person, ARGV[7], id)
  return reply('OK', 1, 0)
end

local person = redis.call('HGET', key, 'person')
if not person then return reply('NOT_FOUND', 0, 0) end
held_points(person, now)  -- expires this one too if its time has come
local state = redis.call('HGET', key, 'state')

if op == 'cancel' then
  if state == 'FULFILLED' then return reply('FAILED_PRECONDITION', 0, 0) end
  if state == 'PENDING' then
    redis.call('HSET', key, 'state', 'CANCELLED', 'end_ms', ARGV[2])
    redis.call('ZREM', P .. 'holds:' .. person, id)
    return reply('OK', 1, 0)
  end
  return reply('OK', 0, 0)  -- already cancelled or expired
end

if op == 'fulfill' then
  if state == 'FULFILLED' then return reply('OK', 0, 0) end
  if state ~= 'PENDING' then return reply('FAILED_PRECONDITION', 0, 0) end
  local ctx = new_ctx(ARGV[2], '', 0, 0)
  local t = read_transfer(5)
  -- Release this hold, then the debit must fit what is available.
  local holds = P .. 'holds:' .. person
  local expire = redis.call('ZSCORE', holds, id)
  redis.call('ZREM', holds, id)
  local err = check(t, ctx)
  if err then
    redis.call('ZADD', holds, expire, id)
    if err[2] == 'CONFLICT' then return reply('CONFLICT', 0, 0) end
    return reply('FUNDS', err[5], err[6])
  end
  apply(t, ctx)
  redis.call('HSET', key, 'state', 'FULFILLED', 'transfer_id', t.id, 'end_ms', ARGV[2])
  flush_outbox(ctx, ARGV[4])
  return reply('OK', 1, 0)
end

return redis.error_reply('INVALID_ARGUMENT unknown redemption op ' .. tostring(op))
