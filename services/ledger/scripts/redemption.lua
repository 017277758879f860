-- Redemptions (two-phase). KEYS: rdm:<id>, the person's held/holds (the
-- person the caller names; the stored one is asked for with NEED_KEYS when
-- it differs), fulfil: the transfer's keys as post.lua's, and "audit:{org}"
-- (same slot). ARGV: op, now_ms, redemption id, audit count n, then n
-- field/value strings of an audit entry (common::audit::AppendCommand after
-- "XADD key *"; n = 0: not an admin action), then per op:
--   create:  person, reward, points, expire_ms, request_id
--   fulfill: event header, TF transfer fields (earned -> rewards)
--   cancel:  (nothing)
-- The audit entry is written only when the call changes the redemption, in
-- the same atomic step. Returns {code, n1, n2, HGETALL of the redemption},
-- except OUT_OF_BOUNDS: {code, 0, 0, {'bound', "account\tstored balance"}}.
local op, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local audit_count = tonumber(ARGV[4])
local base = 5 + audit_count  -- the op's first argument
local rdm_key = key('rdm:' .. id)

local function reply(code, n1, n2)
  return {code, n1, n2, redis.call('HGETALL', rdm_key)}
end

local function changed()
  if audit_count > 0 then redis.call('XADD', AUDIT, '*', unpack(ARGV, 5, base - 1)) end
  return reply('OK', 1, 0)
end

if op == 'create' then
  local person, reward, points = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local expire_ms, request_id = ARGV[base + 3], ARGV[base + 4]
  if not holds_ready(person, now) then return need_reply() end
  local held = held_points(person, now)
  if redis.call('EXISTS', rdm_key) == 1 then
    local stored = redis.call('HMGET', rdm_key, 'reward', 'points')
    if stored[1] ~= reward or stored[2] ~= points then return reply('CONFLICT', 0, 0) end
    return reply('OK', 0, 0)
  end
  local holds = key('holds:' .. person)
  if redis.call('ZCARD', holds) >= MAX_PENDING then return reply('CAP', MAX_PENDING, 0) end
  local account = 'earned:' .. person
  local stored, balance = bounded_balance(account, 0, 0)
  if balance == nil then return {'OUT_OF_BOUNDS', 0, 0, {'bound', account .. '\t' .. stored}} end
  if balance - held < tonumber(points) then return reply('FUNDS', balance, held) end
  redis.call('HSET', rdm_key, 'person', person, 'reward', reward, 'points', points,
             'state', 'PENDING', 'create_ms', ARGV[2], 'expire_ms', expire_ms,
             'request_id', request_id)
  redis.call('ZADD', holds, expire_ms, id)
  add_held(person, tonumber(points))
  return changed()
end

local person = redis.call('HGET', rdm_key, 'person')
if not person then return reply('NOT_FOUND', 0, 0) end
holds_ready(person, now)
if op == 'fulfill' then
  local debited = ARGV[base + 1 + 8]  -- the transfer's dperson (read_transfer)
  if debited ~= person then holds_ready(debited, now) end
end
local need = need_reply()
if need then return need end
held_points(person, now)  -- expires this one too if its time has come
local state = redis.call('HGET', rdm_key, 'state')
local points = tonumber(redis.call('HGET', rdm_key, 'points'))

if op == 'cancel' then
  if state == 'FULFILLED' then return reply('FAILED_PRECONDITION', 0, 0) end
  if state == 'PENDING' then
    redis.call('HSET', rdm_key, 'state', 'CANCELLED', 'end_ms', ARGV[2])
    redis.call('ZREM', key('holds:' .. person), id)
    add_held(person, -points)
    return changed()
  end
  return reply('OK', 0, 0)  -- already cancelled or expired
end

if op == 'fulfill' then
  if state == 'FULFILLED' then return reply('OK', 0, 0) end
  if state ~= 'PENDING' then return reply('FAILED_PRECONDITION', 0, 0) end
  local ctx = new_ctx(ARGV[2], '', 0, 0)
  local t = read_transfer(base + 1)
  -- This hold is released by the fulfilment: the debit must fit what is
  -- available without it. Nothing is written until the check passed.
  ctx.released[person] = points
  local err = check(t, ctx)
  if err then
    if err[2] == 'CONFLICT' then return reply('CONFLICT', 0, 0) end
    if err[2] == 'OUT_OF_BOUNDS' then
      return {'OUT_OF_BOUNDS', 0, 0, {'bound', err[4]}}
    end
    return reply('FUNDS', err[5], err[6])
  end
  redis.call('ZREM', key('holds:' .. person), id)
  add_held(person, -points)
  apply(t, ctx)
  redis.call('HSET', rdm_key, 'state', 'FULFILLED', 'transfer_id', t.id, 'end_ms', ARGV[2])
  flush_outbox(ctx, ARGV[base])
  return changed()
end

return redis.error_reply('INVALID_ARGUMENT unknown redemption op ' .. tostring(op))
