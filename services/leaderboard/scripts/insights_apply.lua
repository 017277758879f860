-- Applies one org's batch of kudos events to the insights counters, exactly
-- once: the batch must be the stream's next entries after the mark
-- (KEYS[1] field "k"), and the mark moves to its last entry in this same
-- script.
--
-- KEYS[1] ins:{org}:hwm  KEYS[2] kudos:{org}:events  KEYS[3] ins:{org}:last
-- KEYS[4] ins:{org}:settings  KEYS[5..] period keys (people, pairs, recip, meta)
-- ARGV: pair_cap, n, id_1..id_n,
--   m, (key, field, amount) * m                       -- HINCRBY
--   p, (people, pairs, recip, meta, giver, recipient, amount) * p
--   l, (person, ms) * l                               -- last recognized (max)
--   e, (key, unix_seconds) * e                        -- EXPIREAT
--   has_settings, settings
-- Returns {1, last id} applied; {0, mark} when the batch starts at or below
-- the mark (nothing written: drop those entries and call again); {-1, k}
-- when only the first k entries follow the mark (another consumer holds
-- the next ones, or the batch skips some): nothing written.

local function parse(id)
  local dash = string.find(id, '-', 1, true)
  if not dash then return tonumber(id), 0 end
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function le(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am ~= bm then return am < bm end
  return as <= bs
end

local pair_cap = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local ids = {}
for i = 1, n do ids[i] = ARGV[2 + i] end
local at = 3 + n

local mark = redis.call('HGET', KEYS[1], 'k')
if mark and le(ids[1], mark) then return {0, mark} end
local start = '-'
if mark then start = '(' .. mark end
local following = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', n)
local k = 0
for i = 1, n do
  if following[i] and following[i][1] == ids[i] then k = i else break end
end
if k < n then return {-1, k} end

local m = tonumber(ARGV[at]); at = at + 1
for _ = 1, m do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[at])], ARGV[at + 1], ARGV[at + 2])
  at = at + 3
end

local p = tonumber(ARGV[at]); at = at + 1
for _ = 1, p do
  local people = KEYS[tonumber(ARGV[at])]
  local pairs = KEYS[tonumber(ARGV[at + 1])]
  local recip = KEYS[tonumber(ARGV[at + 2])]
  local meta = KEYS[tonumber(ARGV[at + 3])]
  local giver, recipient, amount = ARGV[at + 4], ARGV[at + 5], tonumber(ARGV[at + 6])
  at = at + 7
  local field = giver .. '>' .. recipient
  local known = redis.call('HEXISTS', pairs, field) == 1
  if not known and redis.call('HLEN', pairs) >= pair_cap then
    redis.call('HINCRBY', meta, 'pairs_dropped', amount)
  else
    local count = redis.call('HINCRBY', pairs, field, amount)
    if not known then
      redis.call('HINCRBY', people, recipient .. '|ug', 1)
    end
    if count >= 3 then
      local back = tonumber(redis.call('HGET', pairs, recipient .. '>' .. giver) or '0')
      if back >= 3 then
        if giver < recipient then
          redis.call('SADD', recip, giver .. '|' .. recipient)
        else
          redis.call('SADD', recip, recipient .. '|' .. giver)
        end
      end
    end
  end
end

local l = tonumber(ARGV[at]); at = at + 1
for _ = 1, l do
  local person, ms = ARGV[at], tonumber(ARGV[at + 1])
  at = at + 2
  local current = tonumber(redis.call('HGET', KEYS[3], person) or '-1')
  if ms > current then redis.call('HSET', KEYS[3], person, ARGV[at - 1]) end
end

local e = tonumber(ARGV[at]); at = at + 1
for _ = 1, e do
  local key = KEYS[tonumber(ARGV[at])]
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIREAT', key, ARGV[at + 1]) end
  at = at + 2
end

if ARGV[at] == '1' then redis.call('SET', KEYS[4], ARGV[at + 1]) end

redis.call('HSET', KEYS[1], 'k', ids[n])
return {1, ids[n]}
