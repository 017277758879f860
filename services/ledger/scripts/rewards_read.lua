-- Rewards reads that need more than one key (issue 18). KEYS[1] =
-- "ledger:{org}:". scripts/lib.lua is prepended by the C++ side.
-- ARGV: op, now_ms, then per op:
--   list:      index key suffix ('rw:all', 'rw:p:<person>', 'rw:open'),
--              order ('newest' / 'oldest'), after (a seq, '' = from the
--              start), page size
--              -> {next seq or '', id, HGETALL, id, HGETALL, ...}; ids whose
--              record expired leave the index on the way.
--   liability: HSCAN cursor of P..'bal', count
--              -> {next cursor, awaiting points, balance, held, balance,
--              held, ...} one pair per earned account of this scan step
--              (strings: C++ sums them exactly). Expired holds are released
--              on the way (what every script touching a person does).
local op, now = ARGV[1], tonumber(ARGV[2])

if op == 'list' then
  local index, order, after, size = P .. ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
  local ids
  if order == 'newest' then
    local from = '+inf'
    if after ~= '' then from = '(' .. after end
    ids = redis.call('ZREVRANGEBYSCORE', index, from, '-inf', 'WITHSCORES', 'LIMIT', 0, size + 1)
  else
    local from = '-inf'
    if after ~= '' then from = '(' .. after end
    ids = redis.call('ZRANGEBYSCORE', index, from, '+inf', 'WITHSCORES', 'LIMIT', 0, size + 1)
  end
  local out = {''}
  local taken, last = 0, ''
  for i = 1, #ids, 2 do
    if taken == size then
      out[1] = last
      return out
    end
    local fields = redis.call('HGETALL', P .. 'rdm:' .. ids[i])
    if #fields == 0 then
      redis.call('ZREM', index, ids[i])
    else
      out[#out + 1] = ids[i]
      out[#out + 1] = fields
    end
    taken = taken + 1
    last = ids[i + 1]
  end
  return out
end

if op == 'liability' then
  local scan = redis.call('HSCAN', P .. 'bal', ARGV[3], 'COUNT', tonumber(ARGV[4]))
  local out = {scan[1], redis.call('GET', P .. 'rw:awaiting_points') or '0'}
  local fields = scan[2]
  for i = 1, #fields, 2 do
    local account = fields[i]
    if string.sub(account, 1, 7) == 'earned:' then
      out[#out + 1] = fields[i + 1]
      out[#out + 1] = int(held_points(string.sub(account, 8), now))
    end
  end
  return out
end

return redis.error_reply('INVALID_ARGUMENT unknown rewards read op ' .. tostring(op))
