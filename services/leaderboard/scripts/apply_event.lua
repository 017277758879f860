-- Applies one org's batch of stream entries to the projections, exactly once:
-- per stream, the entries must follow the org's high-water mark (the last
-- applied id) without a gap; they are applied and the mark moves to the
-- last one in the same atomic step (apply_batch.h builds the call).
-- KEYS[1]: the org's marks (HASH k / l -> last applied id of each stream).
-- KEYS[2]: the org's rebuild lock (value = the rebuilding owner's token).
-- KEYS[3]: the applied set of older versions (read while a stream has no mark).
-- KEYS[4], KEYS[5]: the org's kudos and ledger streams (read: the gap check;
--   entries that are not in their stream, e.g. a deleted one, are not checked).
-- KEYS[6]: the org's board generation (lbcache:{org}:gen: INCRed by every
--   rebuild swap, and here when a board loses its last member).
-- KEYS[7..9]: the guard zsets of older versions (one per stream: k, l, r).
--   While one exists the batch is ABORTED: the consumer is moving its ids
--   into their buckets (Store::SplitLegacyGuards), and a guard looked up
--   only in its bucket could miss an id applied before the upgrade.
-- KEYS[10..]: every key the operations touch (all in the org's slot).
-- ARGV: token,
--   nk, kudos entry ids..., nl, ledger entry ids...   (each stream's in order)
--   ng, (member, zset key, score, cut, text id)... guards of the batch: the
--        member (GuardMember: the logical id, its kudos id packed) or the
--        text id (the logical id, '' when it is the member: how versions
--        before the packing stored it, read until those leave the window)
--        already there at or after the cut (unix seconds, seconds() below)
--        was applied within the window; only the member is written, with
--        the score (GuardScore: -(the entry's unix seconds))
--   nr, (zset key, cut)...      guards before the cut leave (both score forms)
--   no, ops...                                         S R H N P D V, in entry order
--   nz, (key, expireat, read, n, (member, total) x n)... board increments,
--        summed, grouped per board; read "1": the badges below read these
--        members' scores; expireat "0" = none, "=<s>" = the caller knows the
--        board has it (set when the board generation is still the one
--        below), "<s>" = set if new
--   generation: the board generation the caller's "=" expiries hold for
--   nt, (badges key, badge, ms, board key, member, threshold, cum, event)...
--        badge when the board score after the entry (= final - total + cum)
--        reaches the threshold; its event ("" = none) appended when written
--   events: "0", or "1", events stream key, max len, freezes per month,
--        work days ("12345", 1 = Monday), holidays ("YYYY-MM-DD,...")
--        (issue 17: what the ops B, U, Y and the thresholds append to)
--   group (optional, last): the consumer group; a stream without a mark yet
--        is refused (ABORTED) while the group holds an entry before the batch
--        pending (an old version's consumer's, not applied yet: marking past
--        it would drop it as applied once claimed)
-- Returns {1, board generation} when applied; {0, mark k, mark l, {stale ids}, {seen guard ids}}
-- when part of the batch was applied before (nothing written: the caller
-- drops those and calls again); ABORTED while a rebuild holds the org or
-- when entries before the batch are not applied yet.
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then
  return redis.error_reply('ABORTED projections of this org are being rebuilt')
end
if redis.call('EXISTS', KEYS[7], KEYS[8], KEYS[9]) > 0 then
  return redis.error_reply('ABORTED the org\'s applied ids are being moved into their buckets (an upgrade); retry')
end
local function key(at) return KEYS[tonumber(ARGV[at])] end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function greater(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams > bms or (ams == bms and aseq > bseq)
end

-- The events section and the optional consumer group after it (nothing
-- else follows): their ARGV indexes.
local function tail_sections()
  local i = 2
  for _ = 1, 2 do i = i + 1 + tonumber(ARGV[i]) end  -- nk / nl entry ids
  i = i + 1 + 5 * tonumber(ARGV[i])  -- guards
  i = i + 1 + 2 * tonumber(ARGV[i])  -- guard trims
  i = i + 1 + tonumber(ARGV[i])  -- ops
  local nz = tonumber(ARGV[i])  -- increment groups
  i = i + 1
  for _ = 1, nz do i = i + 4 + 2 * tonumber(ARGV[i + 3]) end
  i = i + 1 + 8 * tonumber(ARGV[i])  -- thresholds
  i = i + 1  -- generation
  local events = i
  if ARGV[i] == '1' then i = i + 6 else i = i + 1 end
  return events, i
end
local function consumer_group()
  local _, group = tail_sections()
  return ARGV[group]
end

-- Phase 1: checks only, nothing written.
local marks = redis.call('HMGET', KEYS[1], 'k', 'l')
local legacy = nil
local stale, seen = {}, {}
local streams = {{'k', KEYS[4], marks[1]}, {'l', KEYS[5], marks[2]}}
local at = 2
local last = {}
for s = 1, 2 do
  local field, stream, mark = streams[s][1], streams[s][2], streams[s][3]
  local n = tonumber(ARGV[at])
  if n > 0 then
    local first = ARGV[at + 1]
    last[s] = ARGV[at + n]
    if mark then
      if not greater(first, mark) then
        stale[#stale + 1] = field .. ':' .. first
      else
        local next = redis.call('XRANGE', stream, '(' .. mark, '+', 'COUNT', 1)[1]
        if next and next[1] ~= first then
          return redis.error_reply('ABORTED ' .. stream .. ': entries before ' .. first ..
                                   ' are not applied yet (another consumer holds them)')
        end
      end
    else
      if legacy == nil then legacy = redis.call('EXISTS', KEYS[3]) == 1 end
      if legacy then
        local group = consumer_group()
        if group and group ~= '' then
          -- Pending entries before the batch the old version applied (its
          -- set holds them: a redelivery, or this batch's own dropped stale
          -- ones) are fine; any other must be applied first. Bounded: past
          -- 50 pages of 200 it refuses too (retried; claims ack them).
          local from, waiting, seen_all = '-', false, false
          for _ = 1, 50 do
            local page = redis.call('XPENDING', stream, group, from, '(' .. first, 200)
            for _, entry in ipairs(page) do
              if redis.call('SISMEMBER', KEYS[3], field .. ':' .. entry[1]) == 0 then
                waiting = true
                break
              end
            end
            if waiting or #page < 200 then
              seen_all = true
              break
            end
            from = '(' .. page[#page][1]
          end
          if waiting or not seen_all then
            return redis.error_reply('ABORTED ' .. stream .. ': entries before ' .. first ..
                                     ' are pending, not applied yet (upgrade: no mark yet)')
          end
        end
        for j = 1, n do
          local id = field .. ':' .. ARGV[at + j]
          if redis.call('SISMEMBER', KEYS[3], id) == 1 then stale[#stale + 1] = id end
        end
      else
        local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
        if head and head[1] ~= first then
          return redis.error_reply('ABORTED ' .. stream .. ': entries before ' .. first ..
                                   ' are not applied yet (another consumer holds them)')
        end
      end
    end
  end
  at = at + 1 + n
end
local ng = tonumber(ARGV[at])
local guards = at + 1
-- The guards per zset key (ARGV index of each), so each key is read with
-- one ZMSCORE and written with one ZADD per 500 ids, not one call per id.
local guard_keys, guards_of = {}, {}
for g = 0, ng - 1 do
  local j = guards + 5 * g
  local k = ARGV[j + 1]
  if not guards_of[k] then
    guards_of[k] = {}
    guard_keys[#guard_keys + 1] = k
  end
  local list = guards_of[k]
  list[#list + 1] = j
end
local function chunks_of(list, each)
  for from = 1, #list, 500 do each(from, math.min(#list, from + 499)) end
end
-- When a stored guard's id was applied, in unix seconds (GuardSeconds): its
-- score is -(seconds), or (a guard written before issue 15's seconds) ms.
local function seconds(score)
  score = tonumber(score)
  if score <= 0 then return -score end
  return math.floor(score / 1000)
end
-- A guard's ARGV index -> the later stored score of its member and text id
-- (false: neither stored).
local stored = {}
-- The all-values badge's check (the V or U op at i): the person's values set
-- holds every value of the catalog, each as its ValueMember or (sets
-- written before issue 15's packing) its id; ARGV lists them in pairs.
local function holds_every_value(i)
  local set, count = key(i + 4), tonumber(ARGV[i + 5])
  for j = 1, count, 2 do
    if redis.call('SISMEMBER', set, ARGV[i + 5 + j]) == 0 and
        redis.call('SISMEMBER', set, ARGV[i + 6 + j]) == 0 then
      return false
    end
  end
  return true
end
for _, k in ipairs(guard_keys) do
  local list = guards_of[k]
  chunks_of(list, function(from, to)
    local ids, of = {}, {}
    for x = from, to do
      ids[#ids + 1] = ARGV[list[x]]
      of[#ids] = list[x]
      if ARGV[list[x] + 4] ~= '' then
        ids[#ids + 1] = ARGV[list[x] + 4]
        of[#ids] = list[x]
      end
    end
    local scores = redis.call('ZMSCORE', KEYS[tonumber(k)], unpack(ids))
    for y = 1, #ids do
      local j, score = of[y], scores[y]
      if score and (not stored[j] or seconds(score) > seconds(stored[j])) then stored[j] = score end
    end
  end)
end
for g = 0, ng - 1 do
  local j = guards + 5 * g
  local id = ARGV[j]
  local score = stored[j]
  local text_id = ARGV[j + 4] ~= '' and ARGV[j + 4] or id
  if score and seconds(score) >= tonumber(ARGV[j + 3]) then
    seen[#seen + 1] = id
    seen[#seen + 1] = score
  elseif legacy and redis.call('SISMEMBER', KEYS[3], text_id) == 1 then
    seen[#seen + 1] = id
    seen[#seen + 1] = ARGV[j + 2]
  end
end
if #stale > 0 or #seen > 0 then
  return {0, marks[1] or '', marks[2] or '', stale, seen}
end

-- Phase 2: the writes.

-- Issue 17: the leaderboard's events (lb:{org}:events), appended only by
-- a change (a badge written, an active day added), in this atomic call.
local ev_key, ev_max_len, ev_freezes
local ev_work, ev_holidays = {}, {}
do
  local at_events = tail_sections()
  if ARGV[at_events] == '1' then
    ev_key = KEYS[tonumber(ARGV[at_events + 1])]
    ev_max_len = ARGV[at_events + 2]
    ev_freezes = tonumber(ARGV[at_events + 3])
    for d in string.gmatch(ARGV[at_events + 4], '%d') do ev_work[tonumber(d)] = true end
    ev_holidays = ARGV[at_events + 5]
  end
end
local function emit(event)
  if ev_key and event ~= '' then
    redis.call('XADD', ev_key, 'MAXLEN', '~', ev_max_len, '*', 'event', event)
  end
end
-- Protobuf varint of a non-negative integer (exact below 2^53).
local function varint(n)
  local out = {}
  repeat
    local b = n % 128
    n = (n - b) / 128
    if n > 0 then b = b + 128 end
    out[#out + 1] = string.char(b)
  until n == 0
  return table.concat(out)
end
-- Days since 1970-01-01 of 'YYYY-MM-DD' (proleptic Gregorian) or of a day
-- number (DayMember: what the days sets hold since issue 15), nil if neither.
local function day_number(text)
  if string.match(text, '^%d%d?%d?%d?%d?%d?%d?$') then return tonumber(text) end
  local y, m, d = string.match(text, '^(%d+)-(%d+)-(%d+)$')
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
-- year * 12 + month of a day number.
local function month_of(n)
  n = n + 719468
  local era = math.floor(n / 146097)
  local doe = n - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) -
                          math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y * 12 + m
end
-- ComputeStreak (leaderboard_rules.cc) as of `day`, today = day: the
-- current and the longest run of active work days (non-work days and
-- holidays skipped, a missed work day frozen while the month has freezes).
-- Bounded: days more than 3 years before `day` are not looked at. A
-- non-work day or holiday extends nothing: 0, 0.
local function streak(days_key, day)
  local target = day_number(day)
  if not target then return 0, 0 end
  local holidays = {}
  for h in string.gmatch(ev_holidays, '[^,]+') do
    local n = day_number(h)
    if n then holidays[n] = true end
  end
  if not ev_work[(target + 3) % 7 + 1] or holidays[target] then return 0, 0 end
  local active, first = {}, nil
  for _, text in ipairs(redis.call('SMEMBERS', days_key)) do
    local n = day_number(text)
    if n and n <= target and n >= target - 1096 then
      active[n] = true
      if not first or n < first then first = n end
    end
  end
  if not first then return 0, 0 end
  local run, longest, used = 0, 0, {}
  for n = first, target do
    if ev_work[(n + 3) % 7 + 1] and not holidays[n] then  -- 1970-01-01: Thursday (4)
      if active[n] then
        run = run + 1
        if run > longest then longest = run end
      elseif n ~= target then
        local frozen = false
        if run > 0 and ev_freezes > 0 then
          local m = month_of(n)
          if (used[m] or 0) < ev_freezes then
            used[m] = (used[m] or 0) + 1
            frozen = true
          end
        end
        if not frozen then run = 0 end
      end
    end
  end
  return run, longest
end
for _, k in ipairs(guard_keys) do
  local list = guards_of[k]
  chunks_of(list, function(from, to)
    local add = {}
    for x = from, to do
      add[#add + 1] = ARGV[list[x] + 2]
      add[#add + 1] = ARGV[list[x]]
    end
    redis.call('ZADD', KEYS[tonumber(k)], unpack(add))
  end)
end
at = guards + 5 * ng
local nr = tonumber(ARGV[at])
for r = 0, nr - 1 do
  -- Before the cut: -(seconds) above -cut, or ms (written before) below cut * 1000.
  local cut = tonumber(ARGV[at + 2 + 2 * r])
  redis.call('ZREMRANGEBYSCORE', key(at + 1 + 2 * r), string.format('(%.0f', -cut),
    string.format('(%.0f', cut * 1000))
end
at = at + 1 + 2 * nr
local ops_end = at + tonumber(ARGV[at])
local i = at + 1
while i <= ops_end do
  local op = ARGV[i]
  if op == 'S' then
    redis.call('SADD', key(i + 1), ARGV[i + 2])
    i = i + 3
  elseif op == 'R' then
    redis.call('SREM', key(i + 1), ARGV[i + 2])
    i = i + 3
  elseif op == 'H' then
    redis.call('HSET', key(i + 1), ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'N' then
    redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'B' then  -- N + its BadgeEarned when written
    if redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3]) == 1 then emit(ARGV[i + 4]) end
    i = i + 5
  elseif op == 'Y' then
    -- S on a person's active days; a new day appends its StreakExtended
    -- (the event's prefix + streak_extended {length_days}, field 11 / 3)
    -- when the streak reaches 2 work days, and a giving streak reaching
    -- its badge's days awards the badge (k badges "0": receiving).
    if redis.call('SADD', key(i + 1), ARGV[i + 2]) == 1 and ev_key then
      local run, longest = streak(key(i + 1), ARGV[i + 2])
      if run >= 2 then
        local length = string.char(24) .. varint(run)
        emit(ARGV[i + 3] .. string.char(90) .. varint(#length) .. length)
      end
      if ARGV[i + 4] ~= '0' and longest >= tonumber(ARGV[i + 6]) and
          redis.call('HSETNX', key(i + 4), ARGV[i + 5], ARGV[i + 7]) == 1 then
        emit(ARGV[i + 8])
      end
    end
    i = i + 9
  elseif op == 'P' then
    redis.call('SET', key(i + 1), ARGV[i + 2])
    i = i + 3
  elseif op == 'D' then
    redis.call('DEL', key(i + 1))
    i = i + 2
  elseif op == 'V' then
    local count = tonumber(ARGV[i + 5])
    if holds_every_value(i) then redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3]) end
    i = i + 6 + count
  elseif op == 'U' then  -- V + its BadgeEarned when written
    local count = tonumber(ARGV[i + 5])
    if holds_every_value(i) and redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3]) == 1 then
      emit(ARGV[i + 6 + count])
    end
    i = i + 7 + count
  else
    return redis.error_reply('INTERNAL apply_event: unknown operation ' .. tostring(op))
  end
end

-- Board increments: one ZINCRBY per (board, member); a board's expiry
-- depends only on its period, so it is set once, when the board is new
-- (a member new to it), after every increment (an expiry in the past
-- deletes the key, as the increments one by one would leave it), and not
-- when the caller knows the board has it (issue 15: one EXPIREAT per board
-- per replica, not per batch) while the board generation it learnt that
-- at holds: a board that lost its last member (gone from Redis) bumps the
-- generation, as a rebuild's swap does, so no replica trusts what it knew.
-- Increments the count badges read come first (nb of them): their score
-- before the batch is kept for the badges below.
at = ops_end + 1
local nz = tonumber(ARGV[at])
local thresholds_at = at + 1
for _ = 1, nz do thresholds_at = thresholds_at + 4 + 2 * tonumber(ARGV[thresholds_at + 3]) end
local generation = redis.call('GET', KEYS[6]) or ''
local known_ok = generation == ARGV[thresholds_at + 1 + 8 * tonumber(ARGV[thresholds_at])]
local base = {}
local fresh, fresh_keys = {}, {}
local call = redis.call
local j = at + 1
for _ = 1, nz do
  local k, expire_at, read = KEYS[tonumber(ARGV[j])], ARGV[j + 1], ARGV[j + 2] == '1'
  local last_member = j + 2 + 2 * tonumber(ARGV[j + 3])
  for m = j + 4, last_member, 2 do
    local member, total = ARGV[m], ARGV[m + 1]
    local score = call('ZINCRBY', k, total, member)
    if read then base[ARGV[j] .. ' ' .. member] = tonumber(score) - tonumber(total) end
    -- Issue 18: a retraction took back all a member had: it leaves the board.
    if tonumber(score) == 0 then
      call('ZREM', k, member)
      if call('EXISTS', k) == 0 then
        generation = tostring(call('INCR', KEYS[6]))
        known_ok = false
      end
    end
    -- Integral scores print as integers: equal text = the member was new.
    if score == total and expire_at ~= '0' and not fresh[k] then
      fresh[k] = expire_at
      fresh_keys[#fresh_keys + 1] = k
    end
  end
  j = last_member + 2
end
for _, k in ipairs(fresh_keys) do
  local expire_at = fresh[k]
  if string.byte(expire_at, 1) ~= 61 then  -- not "=<s>": the caller does not know
    call('EXPIREAT', k, expire_at, 'NX')
  elseif not known_ok then
    call('EXPIREAT', k, string.sub(expire_at, 2), 'NX')
  end
end

-- Threshold badges, in entry order: the score each entry left.
at = thresholds_at
local nt = tonumber(ARGV[at])
local awarded = {}
for t = 0, nt - 1 do
  local j = at + 1 + 8 * t
  local badges, badge = key(j), ARGV[j + 1]
  if not awarded[badges .. ' ' .. badge] then
    local before = base[ARGV[j + 3] .. ' ' .. ARGV[j + 4]]
    local score
    if before then
      score = before + tonumber(ARGV[j + 6])
    else
      score = tonumber(redis.call('ZSCORE', key(j + 3), ARGV[j + 4]) or '0')
    end
    if score >= tonumber(ARGV[j + 5]) then
      if redis.call('HSETNX', badges, badge, ARGV[j + 2]) == 1 then emit(ARGV[j + 7]) end
      awarded[badges .. ' ' .. badge] = true
    end
  end
end

if last[1] then redis.call('HSET', KEYS[1], 'k', last[1]) end
if last[2] then redis.call('HSET', KEYS[1], 'l', last[2]) end
return {1, generation}
