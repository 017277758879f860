-- Every write of the awards area (programs_store.h, WriteBatch): an
-- idempotency record, then a list of operations, all checked before any is
-- applied, so a batch is written whole or not at all. Every key is in KEYS.
-- ARGV[1] = index of the request key in KEYS (0 = none), ARGV[2] = the
-- request's fingerprint, ARGV[3] = what a retry returns, ARGV[4] = the
-- record's TTL in seconds; then each op: name, key index, argc, args...
-- Ops: PUT expected_version payload   (a record: hash {v, pb})
--      EXPECT expected_version        (a record left as it is, unchanged since read)
--      ZADDB score member max         (a bounded sorted set)
--      ZREM member
--      UNIQUE field value             (a hash field naming one owner)
--      XADD maxlen field value        (a capped stream)
--      AUDIT actor action target reason time
--      SADD member
-- Returns {'OK'}, {'DONE', result} (a retry), {'MISMATCH'} (the request id
-- was used with another payload), {'CONFLICT', op} (a record's version
-- moved), {'EXISTS', op, value} (UNIQUE held by another value), {'FULL', op}.
local req = tonumber(ARGV[1])
if req > 0 then
  local prior = redis.call('GET', KEYS[req])
  if prior then
    -- "<length of fingerprint>:<fingerprint><result>" (both binary).
    local colon = string.find(prior, ':', 1, true)
    local length = tonumber(string.sub(prior, 1, colon - 1))
    local fp = string.sub(prior, colon + 1, colon + length)
    if fp == ARGV[2] then return {'DONE', string.sub(prior, colon + length + 1)} end
    return {'MISMATCH'}
  end
end

local ops = {}
local i = 5
while i <= #ARGV do
  local argc = tonumber(ARGV[i + 2])
  local op = {name = ARGV[i], key = KEYS[tonumber(ARGV[i + 1])], args = {}}
  for j = 1, argc do op.args[j] = ARGV[i + 2 + j] end
  ops[#ops + 1] = op
  i = i + 3 + argc
end

for n, op in ipairs(ops) do
  if op.name == 'PUT' or op.name == 'EXPECT' then
    local v = redis.call('HGET', op.key, 'v') or '0'
    if v ~= op.args[1] then return {'CONFLICT', n} end
  elseif op.name == 'ZADDB' then
    if not redis.call('ZSCORE', op.key, op.args[2]) and
       redis.call('ZCARD', op.key) >= tonumber(op.args[3]) then
      return {'FULL', n}
    end
  elseif op.name == 'UNIQUE' then
    local held = redis.call('HGET', op.key, op.args[1])
    if held and held ~= op.args[2] then return {'EXISTS', n, held} end
  end
end

for _, op in ipairs(ops) do
  local a = op.args
  if op.name == 'PUT' then
    redis.call('HSET', op.key, 'v', tostring(tonumber(a[1]) + 1), 'pb', a[2])
  elseif op.name == 'EXPECT' then
    -- checked above; nothing to write
  elseif op.name == 'ZADDB' then
    redis.call('ZADD', op.key, a[1], a[2])
  elseif op.name == 'ZREM' then
    redis.call('ZREM', op.key, a[1])
  elseif op.name == 'UNIQUE' then
    redis.call('HSET', op.key, a[1], a[2])
  elseif op.name == 'XADD' then
    redis.call('XADD', op.key, 'MAXLEN', a[1], '*', a[2], a[3])
  elseif op.name == 'AUDIT' then
    redis.call('XADD', op.key, '*', 'actor', a[1], 'action', a[2], 'target', a[3],
               'reason', a[4], 'time', a[5])
  elseif op.name == 'SADD' then
    redis.call('SADD', op.key, a[1])
  else
    return redis.error_reply('INTERNAL programs_write: unknown op ' .. op.name)
  end
end

if req > 0 then
  redis.call('SET', KEYS[req], #ARGV[2] .. ':' .. ARGV[2] .. ARGV[3], 'EX', ARGV[4])
end
return {'OK'}
