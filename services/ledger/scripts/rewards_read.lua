-- Rewards reads that need more than one key (issue 18). scripts/lib.lua is
-- prepended by the C++ side. ARGV: op, now_ms, then per op:
--   list:      index name ('rw:all', 'rw:p:<person>', 'rw:open'), order
--              ('newest' / 'oldest'), after (a seq, '' = from the start),
--              page size. KEYS: the index and rdm:<id> of the page's ids (a
--              call without them answers NEED_KEYS naming them).
--              -> {next seq or '', id, HGETALL, id, HGETALL, ...}; ids whose
--              record expired leave the index on the way.
--   liability: the people of one HSCAN step of bal (C++ scans). KEYS: bal,
--              rw:awaiting_points, each person's held/holds (and the records
--              of their expired holds, asked for with NEED_KEYS).
--              -> {awaiting points, balance, held, balance, held, ...} one
--              pair per person (strings: C++ sums them exactly). Expired
--              holds are released on the way (what every script touching a
--              person does).
local op, now = ARGV[1], tonumber(ARGV[2])

if op == 'list' then
  local index, order, after, size = key(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
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
  for i = 1, math.min(#ids, 2 * size), 2 do
    if not declared('rdm:' .. ids[i]) then wants('rdm', ids[i]) end
  end
  local need = need_reply()
  if need then return need end
  local out = {''}
  local taken, last = 0, ''
  for i = 1, #ids, 2 do
    if taken == size then
      out[1] = last
      return out
    end
    local fields = redis.call('HGETALL', key('rdm:' .. ids[i]))
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
  for i = 3, #ARGV do holds_ready(ARGV[i], now) end
  local need = need_reply()
  if need then return need end
  local out = {redis.call('GET', key('rw:awaiting_points')) or '0'}
  for i = 3, #ARGV do
    local person = ARGV[i]
    out[#out + 1] = redis.call('HGET', key('bal'), 'earned:' .. person) or '0'
    out[#out + 1] = int(held_points(person, now))
  end
  return out
end

return redis.error_reply('INVALID_ARGUMENT unknown rewards read op ' .. tostring(op))
