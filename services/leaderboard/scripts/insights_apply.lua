-- Applies one org's batch of kudos events to the insights counters, exactly
-- once: the batch must be the stream's next entries after the mark
-- (KEYS[1] field "k"), and the mark moves to its last entry in this same
-- script.
--
-- KEYS[1] ins:{org}:hwm  KEYS[2] kudos:{org}:events  KEYS[3] ins:{org}:last
-- KEYS[4] ins:{org}:settings  KEYS[5] ins:{org}:retracted (the guard)
-- KEYS[6..] period keys (people and pair buckets, recip, meta; see
-- insights_rules.h). People and values are the small integers of
-- ins:{org}:ids, assigned before this script runs.
-- ARGV: pair_cap, n, id_1..id_n,
--   m, (key, field, amount) * m                       -- HINCRBY
--   p, (recipient's people, giver's pairs, recipient's pairs, recip, meta,
--       giver, recipient, amount) * p
--   now (unix s)                                      -- guards past it go
--   r, (kudos id, guard until (unix s), m, (...) * m, p, (...) * p) * r
--                          -- retractions: negative amounts, once per kudos
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
-- A counter taken down to 0 or below (a retraction; below: what it takes
-- back was never counted, e.g. its period started after a trim) is
-- removed: absent reads as 0, and an emptied hash goes with its last field.
local function incr(key, field, amount)
  local value = redis.call('HINCRBY', key, field, amount)
  if amount > 0 and value == amount then fresh[key] = true end
  if value <= 0 then redis.call('HDEL', key, field) end
  return value
end

local function counters(count)
  for _ = 1, count do
    incr(KEYS[tonumber(ARGV[at])], ARGV[at + 1], tonumber(ARGV[at + 2]))
    at = at + 3
  end
end

local function pair_member(giver, recipient)
  if tonumber(giver) < tonumber(recipient) then return giver .. '|' .. recipient end
  return recipient .. '|' .. giver
end

-- Pairs kept and kudos left out per meta key: read once, written once.
local kept_pairs, kept_before, dropped, metas = {}, {}, {}, {}
local function add_pair(people, pair_key, back_pairs, recip, meta, giver, recipient, amount)
  if not kept_pairs[meta] then
    kept_pairs[meta] = tonumber(redis.call('HGET', meta, 'n') or '0')
    kept_before[meta] = kept_pairs[meta]
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
      if redis.call('SADD', recip, pair_member(giver, recipient)) == 1 then fresh[recip] = true end
    end
  end
end

-- A retraction's kudos off a pair: the pair goes (and a distinct giver
-- with it) at 0, and leaves the reciprocity candidates below 3. A pair not
-- kept was counted in the kudos left out past the cap.
local function take_pair(people, pair_key, recip, meta, giver, recipient, amount)
  local field = giver .. '>' .. recipient
  local before = tonumber(redis.call('HGET', pair_key, field) or '0')
  if before == 0 then
    local left_out = tonumber(redis.call('HGET', meta, 'd') or '0')
    if left_out > 0 then incr(meta, 'd', math.max(amount, -left_out)) end
    return
  end
  if not kept_pairs[meta] then
    kept_pairs[meta] = tonumber(redis.call('HGET', meta, 'n') or '0')
    kept_before[meta] = kept_pairs[meta]
    dropped[meta] = 0
    metas[#metas + 1] = meta
  end
  local count = incr(pair_key, field, amount)
  if count <= 0 then
    kept_pairs[meta] = math.max(0, kept_pairs[meta] - 1)
    incr(people, recipient .. 'u', -1)
  end
  if before >= 3 and count < 3 then redis.call('SREM', recip, pair_member(giver, recipient)) end
end

local function pairs_section(take)
  local count = tonumber(ARGV[at]); at = at + 1
  for _ = 1, count do
    local people = KEYS[tonumber(ARGV[at])]
    local pair_key = KEYS[tonumber(ARGV[at + 1])]
    local back_pairs = KEYS[tonumber(ARGV[at + 2])]
    local recip = KEYS[tonumber(ARGV[at + 3])]
    local meta = KEYS[tonumber(ARGV[at + 4])]
    local giver, recipient, amount = ARGV[at + 5], ARGV[at + 6], tonumber(ARGV[at + 7])
    at = at + 8
    if take then
      take_pair(people, pair_key, recip, meta, giver, recipient, amount)
    else
      add_pair(people, pair_key, back_pairs, recip, meta, giver, recipient, amount)
    end
  end
end

-- Skips a section without applying it (a retraction applied before).
local function skip_section()
  local m = tonumber(ARGV[at]); at = at + 1 + 3 * m
  local p = tonumber(ARGV[at]); at = at + 1 + 8 * p
end

local m = tonumber(ARGV[at]); at = at + 1
counters(m)
pairs_section(false)

-- Retractions, each once (the kudos service may append one twice): the
-- guard holds a kudos id until its last period's expiry.
local now = ARGV[at]; at = at + 1
local r = tonumber(ARGV[at]); at = at + 1
if r > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. now) end
for _ = 1, r do
  local kudos_id, guard_until = ARGV[at], ARGV[at + 1]
  at = at + 2
  if redis.call('ZADD', KEYS[5], 'NX', guard_until, kudos_id) == 1 then
    local taken = tonumber(ARGV[at]); at = at + 1
    counters(taken)
    pairs_section(true)
  else
    skip_section()
  end
end
if r > 0 then
  local last_guard = redis.call('ZRANGE', KEYS[5], -1, -1, 'WITHSCORES')
  if last_guard[2] then redis.call('EXPIREAT', KEYS[5], last_guard[2]) end
end

for _, meta in ipairs(metas) do
  if kept_pairs[meta] ~= kept_before[meta] then
    if redis.call('HSET', meta, 'n', kept_pairs[meta]) == 1 then fresh[meta] = true end
  end
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
