-- Reads a board in display order: score descending, ties by member ascending
-- (bytewise), rank = 1 + number of strictly greater scores. A sorted set
-- natively orders (score asc, member asc), so each group of equal scores is
-- a contiguous, member-ascending run; we walk groups from the highest score
-- down and read each group forward. Positions are keysets (score, member),
-- never offsets, so paging neither skips nor repeats while scores change.
-- KEYS[1]: the board.
-- KEYS[2]: the org's SET of people hidden from leaderboards (issue 18).
-- ARGV[1]: 'h' = leave the hidden people out (boards of people), '' = not
--   (boards of teams); ARGV[2]: the viewer, never left out ('' = none).
--   Hidden people are neither listed nor counted: ranks, totals and
--   neighbours are those of the board without them.
-- ARGV[3] mode:
--   'first' n                      -> {total, has_prev, has_next, m, s, r, ...}
--   'page' dir score member n      -> same; dir f/F = after (F: including)
--                                     the member, b/B = before (B: including)
--   'around' member n [names]      -> {total, ranked, score, rank, below_count,
--                                      #above, m, s, r..., #below, m, s, r...}
--                                     (unranked: {total, 0}); with names = '1'
--                                     KEYS[#KEYS] is the directory hash whose
--                                     values (or false) for the member, the
--                                     above and the below, in that order, end
--                                     the reply as one more array (GetRank's
--                                     one round trip).
-- KEYS[3..] (a derived board: the sum of others, BoardDerived): KEYS[1] is
-- its cached union, KEYS[3] the version the cache was made at, KEYS[4] the
-- org's marks, KEYS[5] its cache generation (a rebuild moves it), KEYS[6..]
-- the boards it sums. The union is made again when the marks or the
-- generation moved since (a batch applied, a rebuild swapped), else reused.
local key = KEYS[1]
-- The mode's arguments follow at ARGV[4..] (read in place: no copy per call).
local filter, viewer = ARGV[1], ARGV[2]
local mode = ARGV[3]
-- The directory hash of 'around ... names' is the last key, not a source.
local names_key
local nkeys = #KEYS
if mode == 'around' and ARGV[6] == '1' then
  names_key = KEYS[nkeys]
  nkeys = nkeys - 1
end
if nkeys > 2 then
  local marks = redis.call('HMGET', KEYS[4], 'k', 'l')
  local version = (marks[1] or '-') .. '|' .. (marks[2] or '-') .. '|' ..
                  (redis.call('GET', KEYS[5]) or '0')
  if redis.call('GET', KEYS[3]) ~= version then
    if nkeys > 5 then
      redis.call('ZUNIONSTORE', key, nkeys - 5, unpack(KEYS, 6, nkeys))
      redis.call('PEXPIRE', key, 60000)
    else
      redis.call('DEL', key)
    end
    -- The version lapses before the union it describes.
    redis.call('SET', KEYS[3], version, 'PX', 55000)
  end
end

-- The hidden people on this board (the viewer excepted) and their scores.
-- Bounded by the directory; read in chunks of 1000.
local hidden, hidden_scores = {}, {}
if filter == 'h' then
  local people = redis.call('SMEMBERS', KEYS[2])
  for from = 1, #people, 1000 do
    local to = math.min(#people, from + 999)
    local scores = redis.call('ZMSCORE', key, unpack(people, from, to))
    for j = from, to do
      local score = scores[j - from + 1]
      if score and people[j] ~= viewer then
        hidden[people[j]] = true
        hidden_scores[#hidden_scores + 1] = tonumber(score)
      end
    end
  end
end
-- Hidden people with a score above (sign 1) or below (sign -1) s.
local function hidden_beyond(s, sign)
  local n, x = 0, tonumber(s)
  for _, h in ipairs(hidden_scores) do
    if (sign > 0 and h > x) or (sign < 0 and h < x) then n = n + 1 end
  end
  return n
end

local total = redis.call('ZCARD', key) - #hidden_scores

-- 'around': the reply, with the directory values of the member and its
-- neighbours at the end when asked (names_key).
local function around_reply(x, s, rank, below_count, above, below)
  local out = {total, 1, s, rank, below_count, #above}
  local ids = {x}
  for _, e in ipairs(above) do
    out[#out + 1], out[#out + 2], out[#out + 3] = e[1], e[2], e[3]
    ids[#ids + 1] = e[1]
  end
  out[#out + 1] = #below
  for _, e in ipairs(below) do
    out[#out + 1], out[#out + 2], out[#out + 3] = e[1], e[2], e[3]
    ids[#ids + 1] = e[1]
  end
  if names_key then out[#out + 1] = redis.call('HMGET', names_key, unpack(ids)) end
  return out
end

if mode == 'around' then
  local x, n = ARGV[4], tonumber(ARGV[5])
  local r = redis.call('ZRANK', key, x)
  if not r or hidden[x] then
    local out = {total, 0}
    if names_key then out[3] = redis.call('HMGET', names_key, x) end
    return out
  end
  -- Fast path (GetRank's common case, before any of the walks below are
  -- even defined): the member's tie group (score s) holds the neighbours on
  -- both sides. Within a group display order is native order (member
  -- ascending), so they are the native positions next to r: one ZRANGE over
  -- r +- (n plus the board's hidden people, who may sit in between), all of
  -- rank `rank`. A group edge within reach takes the walks (further down).
  local reach = n + #hidden_scores
  local from = math.max(0, r - reach)
  local near = redis.call('ZRANGE', key, from, r + reach, 'WITHSCORES')
  local at = r - from  -- x's pair: near[2 * at + 1], near[2 * at + 2]
  local s = near[2 * at + 2]
  local above, below = {}, {}
  for j = 2 * at - 1, 1, -2 do
    if #above == n or near[j + 1] ~= s then break end
    if not hidden[near[j]] then table.insert(above, 1, near[j]) end
  end
  for j = 2 * at + 3, #near, 2 do
    if #below == n or near[j + 1] ~= s then break end
    if not hidden[near[j]] then below[#below + 1] = near[j] end
  end
  if #above == n and #below == n then
    local rank = 1 + redis.call('ZCOUNT', key, '(' .. s, '+inf') - hidden_beyond(s, 1)
    local below_count = redis.call('ZCOUNT', key, '-inf', '(' .. s) - hidden_beyond(s, -1)
    for i, m in ipairs(above) do above[i] = {m, s, rank} end
    for i, m in ipairs(below) do below[i] = {m, s, rank} end
    return around_reply(x, s, rank, below_count, above, below)
  end
end


local function less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function group_start(s) return redis.call('ZCOUNT', key, '-inf', '(' .. s) end
local function group_size(s) return redis.call('ZCOUNT', key, s, s) end

-- First native index in the group [a, a + g) whose member is > x (after=true)
-- or >= x (after=false).
local function bound(s, a, g, x, after)
  local own = redis.call('ZSCORE', key, x)
  if own and tonumber(own) == tonumber(s) then
    local r = redis.call('ZRANK', key, x)
    if after then return r + 1 end
    return r
  end
  local lo, hi = a, a + g
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', key, mid, mid)[1]
    if less(m, x) or (after and m == x) then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function lower_group(s)
  local r = redis.call('ZRANGE', key, '(' .. s, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
  if #r == 0 then return nil end
  return r[2]
end

local function higher_group(s)
  local r = redis.call('ZRANGE', key, '(' .. s, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  if #r == 0 then return nil end
  return r[2]
end

-- Up to n entries after (s, x) in display order; x == nil: from the start of
-- group s. inclusive: x itself too.
local function forward(s, x, inclusive, n)
  local out = {}
  while s and #out < n do
    local a = group_start(s)
    local g = group_size(s)
    local i = a
    if x then i = bound(s, a, g, x, not inclusive) end
    while #out < n and i <= a + g - 1 do
      local last = math.min(a + g - 1, i + (n - #out) - 1)
      local r = redis.call('ZRANGE', key, i, last, 'WITHSCORES')
      for j = 1, #r, 2 do
        if not hidden[r[j]] then out[#out + 1] = {r[j], r[j + 1]} end
      end
      i = last + 1
    end
    s = lower_group(s)
    x = nil
  end
  return out
end

-- Up to n entries before (s, x) in display order, returned in display order;
-- x == nil: the whole group s. inclusive: x itself too.
local function backward(s, x, inclusive, n)
  local rev = {}
  while s and #rev < n do
    local a = group_start(s)
    local g = group_size(s)
    local i = a + g
    if x then i = bound(s, a, g, x, inclusive) end
    while #rev < n and i - 1 >= a do
      local first = math.max(a, i - (n - #rev))
      local r = redis.call('ZRANGE', key, first, i - 1, 'WITHSCORES')
      for j = #r - 1, 1, -2 do
        if not hidden[r[j]] then rev[#rev + 1] = {r[j], r[j + 1]} end
      end
      i = first
    end
    s = higher_group(s)
    x = nil
  end
  local out = {}
  for j = #rev, 1, -1 do out[#out + 1] = rev[j] end
  return out
end

local ranks = {}
local function rank(s)
  if not ranks[s] then
    ranks[s] = 1 + redis.call('ZCOUNT', key, '(' .. s, '+inf') - hidden_beyond(s, 1)
  end
  return ranks[s]
end

local function emit(out, entries)
  for _, e in ipairs(entries) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2]
    out[#out + 1] = rank(e[2])
  end
end

if mode == 'first' or mode == 'page' then
  local entries
  local has_prev, has_next = 0, 0
  if mode == 'first' then
    local top = redis.call('ZRANGE', key, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
    entries = {}
    if #top > 0 then entries = forward(top[2], nil, false, tonumber(ARGV[4])) end
  else
    local dir, s, x, n = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
    if dir == 'f' or dir == 'F' then
      entries = forward(s, x, dir == 'F', n)
      if #entries == 0 and #backward(s, x, dir == 'f', 1) > 0 then has_prev = 1 end
    else
      entries = backward(s, x, dir == 'B', n)
      if #entries == 0 and #forward(s, x, dir == 'b', 1) > 0 then has_next = 1 end
    end
  end
  if #entries > 0 then
    local first, last = entries[1], entries[#entries]
    if #backward(first[2], first[1], false, 1) > 0 then has_prev = 1 end
    if #forward(last[2], last[1], false, 1) > 0 then has_next = 1 end
  end
  local out = {total, has_prev, has_next}
  emit(out, entries)
  return out
end

if mode == 'around' then
  -- A group edge within reach of the member: walk the groups.
  local x, n = ARGV[4], tonumber(ARGV[5])
  local s = redis.call('ZSCORE', key, x)
  local above = backward(s, x, false, n)
  local below = forward(s, x, false, n)
  local below_count = redis.call('ZCOUNT', key, '-inf', '(' .. s) - hidden_beyond(s, -1)
  for _, e in ipairs(above) do e[3] = rank(e[2]) end
  for _, e in ipairs(below) do e[3] = rank(e[2]) end
  return around_reply(x, s, rank(s), below_count, above, below)
end

return redis.error_reply('INVALID_ARGUMENT board_read: unknown mode')
