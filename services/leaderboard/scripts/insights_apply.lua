-- Applies one org's batch of kudos events to the insights counters, exactly
-- once: the batch must be the stream's next entries after the mark
-- (KEYS[1] field "k"), and the mark moves to its last entry in this same
-- script.
--
-- KEYS[1] ins:{org}:hwm  KEYS[2] kudos:{org}:events  KEYS[3] ins:{org}:last
-- KEYS[4] ins:{org}:settings  KEYS[5..] period keys (people and pair
-- buckets, recip, meta; see insights_rules.h). People and values are the
-- small integers of ins:{org}:ids, assigned before this script runs.
-- ARGV: pair_cap, n, id_1..id_n,
--   m, (key, field, amount) * m                       -- HINCRBY
--   p, (recipient's people, giver's pairs, recipient's pairs, recip, meta,
--       giver, recipient, amount) * p
--   l, (person, ms) * l                               -- last recognized (max)
--   e, (key, unix_seconds) * e                        -- EXPIREAT once a key
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

-- Keys that may have been created by this script (a field written anew):
-- only they can lack their expiry, as every key gets it in the script that
-- creates it.
local fresh = {}
local function incr(key, field, amount)
  local value = redis.call('HINCRBY', key, field, amount)
  if value == amount then fresh[key] = true end
  return value
end

local m = tonumber(ARGV[at]); at = at + 1
for _ = 1, m do
  incr(KEYS[tonumber(ARGV[at])], ARGV[at + 1], tonumber(ARGV[at + 2]))
  at = at + 3
end

-- Pairs kept and kudos left out per meta key: read once, written once.
local kept_pairs, dropped, metas = {}, {}, {}
local p = tonumber(ARGV[at]); at = at + 1
for _ = 1, p do
  local people = KEYS[tonumber(ARGV[at])]
  local pair_key = KEYS[tonumber(ARGV[at + 1])]
  local back_pairs = KEYS[tonumber(ARGV[at + 2])]
  local recip = KEYS[tonumber(ARGV[at + 3])]
  local meta = KEYS[tonumber(ARGV[at + 4])]
  local giver, recipient, amount = ARGV[at + 5], ARGV[at + 6], tonumber(ARGV[at + 7])
  at = at + 8
  if not kept_pairs[meta] then
    kept_pairs[meta] = tonumber(redis.call('HGET', meta, 'n') or '0')
    dropped[meta] = 0
    metas[#metas + 1] = meta
  end
  local field = giver .. '>' .. recipient
  local count
  if kept_pairs[meta] < pair_cap then
    -- Counts are never zero, so a count equal to the amount is a new pair.
    count = incr(pair_key, field, amount)
    if count == amount then
      kept_pairs[meta] = kept_pairs[meta] + 1
      incr(people, recipient .. 'u', 1)
    end
  elseif redis.call('HEXISTS', pair_key, field) == 1 then
    count = redis.call('HINCRBY', pair_key, field, amount)
  else
    dropped[meta] = dropped[meta] + amount
  end
  if count and count >= 3 then
    local back = tonumber(redis.call('HGET', back_pairs, recipient .. '>' .. giver) or '0')
    if back >= 3 then
      if tonumber(giver) < tonumber(recipient) then
        if redis.call('SADD', recip, giver .. '|' .. recipient) == 1 then fresh[recip] = true end
      else
        if redis.call('SADD', recip, recipient .. '|' .. giver) == 1 then fresh[recip] = true end
      end
    end
  end
end
for _, meta in ipairs(metas) do
  if redis.call('HSET', meta, 'n', kept_pairs[meta]) == 1 then fresh[meta] = true end
  if dropped[meta] > 0 then incr(meta, 'd', dropped[meta]) end
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
  -- A period's expiry never changes: set it once, when a key this script
  -- may have created has none (NX: one command, no PTTL first).
  if fresh[key] then redis.call('EXPIREAT', key, ARGV[at + 1], 'NX') end
  at = at + 2
end

if ARGV[at] == '1' then redis.call('SET', KEYS[4], ARGV[at + 1]) end

redis.call('HSET', KEYS[1], 'k', ids[n])
return {1, ids[n]}
