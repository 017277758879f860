-- Last step of a kudos or a boost, once the ledger answered: COMMITTED
-- (indexes, event) or ABORTED (caps released). Only a PENDING record moves,
-- so a retry racing the reconciler finishes it exactly once.
-- What only the commit needed leaves the record: a committed kudos becomes
-- its pb alone (a kudos.v1.KudosSent: the kudos and its teams), a field of
-- its bucket (a STRING under its own key before the buckets); a
-- committed boost (its pb is in the kudos's boosts list) and an aborted
-- record stay hashes of their state (and error; an aborted kudos its
-- fingerprint too) for retries, and expire with the retry window (ttl_s).
-- Every key it touches is in KEYS (KudosStore::FinishKeys), computed by the
-- caller from what the record holds (ARGV 6-10, which the script checks):
-- KEYS[1] = the record (<kind>:<id>)  KEYS[2] = pending  KEYS[3] = the event stream
-- KEYS[4] = pairs:<actor>:<week>  KEYS[5] = boosts:<kudos_id> (a kudos: its bucket
--   kb:<n>, KudosStore::RecordBucketKey, where it goes once committed)
-- per feed i of ARGV[6] (in its order): KEYS[3 + 3i] = the head, KEYS[4 + 3i] =
--   its chunk list (<feed>#), KEYS[5 + 3i] = <feed>#<ARGV[11]>, the chunk a
--   seal by this commit creates
-- then one key per late chunk of ARGV[13..]: <feed>#<chunk>
-- ARGV: kind, id, outcome ("COMMITTED"|"ABORTED"|"COMMITTED_WITHOUT_POINTS": issue 18,
--       the ledger refused the points for a spent allowance and the record holds
--       its 0-point form (zero_pb, zero_event): commit that and release the
--       pair caps), error_code, error_message,
--       feeds (comma-separated, as the record holds them), seq, kudos_id, actor,
--       week (the record's fields the keys were computed from), new chunk name,
--       n_late, then n_late times: feed, chunk (the sealed chunks a seal by
--       this commit moves late entries into), then the id's feed member
--       (KudosStore::FeedMember: a kudos id packed into 13 bytes; absent = the id),
--       also its field in the bucket, then write_record_key ('1': a committed
--       kudos goes to KEYS[1], as before the buckets: a rolling upgrade)
-- Returns the state after the call, or {'NEED', seq, feeds, kudos_id, actor,
-- week, [feed, chunk]...} with nothing written when the keys passed are not
-- the ones the record needs: call again with the keys of those fields (and
-- those late chunks declared).
local record, pending, events, pairs_key, boosts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local kind, id, outcome = ARGV[1], ARGV[2], ARGV[3]
local bucket = kind == 'kudos' and KEYS[5] or nil  -- a kudos's KEYS[5]
local without_points = outcome == 'COMMITTED_WITHOUT_POINTS'
if without_points then outcome = 'COMMITTED' end
local n_feeds_declared = 0
for _ in string.gmatch(ARGV[6], '[^,]+') do n_feeds_declared = n_feeds_declared + 1 end
local member = ARGV[13 + 2 * tonumber(ARGV[12])] or id
local write_record_key = ARGV[14 + 2 * tonumber(ARGV[12])] == '1'
local late_keys = {}  -- feed -> chunk -> key
for j = 1, tonumber(ARGV[12]) do
  local feed, chunk = ARGV[11 + 2 * j], ARGV[12 + 2 * j]
  late_keys[feed] = late_keys[feed] or {}
  late_keys[feed][chunk] = KEYS[5 + 3 * n_feeds_declared + j]
end

-- A feed is a head ZSET (its newest entries) and, once the head reached 128
-- entries, sealed chunks of its oldest 64 at a time, listed in its chunk
-- list <feed># (score = the chunk's highest seq, member = the chunk's name:
-- its highest seq before issue 14, 's<seq>' of the commit that sealed it
-- since). Every ZSET stays within 128 entries, a listpack (~20 bytes an
-- entry with the member packed, instead of ~110 in a skiplist). Chunks never
-- overlap: a chunk holds (the previous chunk's max, its max]. A commit adds
-- to the head (two commands); an entry below the top chunk's max (committed
-- late) stays in the head until sealing moves it to the chunk whose range
-- holds it, and readers merge the head with the chunks by seq, so it lists
-- in its place meanwhile. Readers: KudosStore's feed_range; archive_batch.lua.

-- The seal this commit makes on a feed, planned before anything is written:
-- nil when the head stays under 128, else the oldest 64 entries after the
-- add (seq, member pairs) and the chunk of each late one. `member` is the
-- commit's entry in this feed (feed_entry).
local function plan_seal(feed, head, dir, seq, member, missing)
  local card = redis.call('ZCARD', head)
  if card + 1 < 128 then return nil end  -- the common case: no seal, one command
  local in_head = redis.call('ZSCORE', head, member)
  if in_head and card < 128 then return nil end
  local listed = redis.call('ZRANGE', head, 0, 63, 'WITHSCORES')
  local oldest, placed = {}, in_head ~= false
  for i = 1, #listed, 2 do
    if not placed and tonumber(seq) < tonumber(listed[i + 1]) then
      oldest[#oldest + 1] = {seq, member}
      placed = true
    end
    oldest[#oldest + 1] = {listed[i + 1], listed[i]}
  end
  if not placed then oldest[#oldest + 1] = {seq, member} end
  while #oldest > 64 do table.remove(oldest) end
  local top = tonumber(redis.call('ZRANGE', dir, -1, -1, 'WITHSCORES')[2] or '0')
  local targets = {}
  for i, entry in ipairs(oldest) do
    if tonumber(entry[1]) <= top then
      local chunk = redis.call('ZRANGE', dir, entry[1], '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
      local key = late_keys[feed] and late_keys[feed][chunk]
      if not key then
        missing[#missing + 1] = feed
        missing[#missing + 1] = chunk
      end
      targets[i] = key
    end
  end
  return {oldest = oldest, top = top, targets = targets}
end

local function apply_seal(head, dir, new_chunk, plan)
  local args, max = {}, nil
  for i, entry in ipairs(plan.oldest) do
    local score, member = entry[1], entry[2]
    if plan.targets[i] then
      redis.call('ZADD', plan.targets[i], score, member)
    else
      args[#args + 1] = score
      args[#args + 1] = member
      max = score
    end
  end
  if max then
    redis.call('ZADD', new_chunk, unpack(args))
    redis.call('ZADD', dir, max, ARGV[11])
  end
  redis.call('ZREMRANGEBYRANK', head, 0, 63)
end

if bucket and redis.call('HEXISTS', bucket, member) == 1 then return 'COMMITTED' end
if redis.call('TYPE', record).ok == 'string' then return 'COMMITTED' end
local state = redis.call('HGET', record, 'state')
if not state then
  return redis.error_reply('NOT_FOUND ' .. kind .. " '" .. id .. "' does not exist")
end
if state ~= 'PENDING' then return state end
local fields = redis.call('HMGET', record, 'seq', 'feeds', 'kudos_id', 'pb', 'event', 'points',
  'actor', 'week', 'recipients', 'ttl_s', 'zero_pb', 'zero_event', 'fp')
local seq, feeds, kudos_id, pb, event = fields[1], fields[2] or '', fields[3] or '', fields[4], fields[5]
local points, actor, week, recipients = tonumber(fields[6]) or 0, fields[7] or '', fields[8] or '', fields[9] or ''
local ttl_s = tonumber(fields[10]) or 30 * 24 * 3600
local function need(missing)
  local answer = {'NEED', seq or '', feeds, kudos_id, actor, week}
  for _, v in ipairs(missing or {}) do answer[#answer + 1] = v end
  return answer
end
if seq ~= ARGV[7] or feeds ~= ARGV[6] or kudos_id ~= ARGV[8] or actor ~= ARGV[9] or week ~= ARGV[10] then
  return need()
end
if without_points and not fields[11] then
  return redis.error_reply('FAILED_PRECONDITION ' .. kind .. " '" .. id ..
    "' cannot go out without points (its org did not allow it when it was sent)")
end
local feed_list, public = {}, false
for feed in string.gmatch(feeds, '[^,]+') do
  feed_list[#feed_list + 1] = feed
  if feed == 'feed:all' then public = true end
end
-- A kudos's entry: in feed:all its packed id; in its other feeds, when it
-- is in feed:all (public), its seq alone, a listpack integer (~9 bytes an
-- entry instead of ~20) that readers resolve through feed:all (KudosStore's
-- feed_range). A private kudos is in no feed:all: its member everywhere.
local function feed_entry(feed)
  if kind == 'kudos' and public and feed ~= 'feed:all' then return seq end
  return member
end
local seals = {}
if outcome == 'COMMITTED' then
  local missing = {}
  for i, feed in ipairs(feed_list) do
    seals[i] = plan_seal(feed, KEYS[3 + 3 * i], KEYS[4 + 3 * i], seq, feed_entry(feed), missing)
  end
  if #missing > 0 then return need(missing) end
end

local commit_only = {'actor', 'fp', 'seq', 'points', 'week', 'kudos_id', 'recipients', 'transfers',
  'event', 'feeds', 'create_ms', 'ttl_s', 'reconcile_attempts', 'reconcile_error', 'dead_letter_time',
  'zero_pb', 'zero_event'}

-- Gives back the points this record reserved under the weekly pair caps.
local function release_pair_caps()
  if points <= 0 then return end
  for recipient in string.gmatch(recipients, '[^,]+') do
    -- Into the hash even when reserved in a pre-hash counter: the cap reads their sum.
    redis.call('HINCRBY', pairs_key, recipient, -points)
  end
  -- The hash may be new here (reserved in a pre-hash counter, or already
  -- expired): it must never outlive its week, as begin_recognition sets.
  if redis.call('TTL', pairs_key) < 0 then redis.call('EXPIRE', pairs_key, 8 * 24 * 3600) end
end

redis.call('ZREM', pending, kind .. ':' .. id)
if without_points then
  -- The kudos goes out with 0 points: nothing of the caps is used.
  release_pair_caps()
  pb, event = fields[11], fields[12]
end
if outcome == 'COMMITTED' then
  for i, feed in ipairs(feed_list) do
    local head = KEYS[3 + 3 * i]
    redis.call('ZADD', head, seq, feed_entry(feed))
    if seals[i] then apply_seal(head, KEYS[4 + 3 * i], KEYS[5 + 3 * i], seals[i]) end
  end
  if kind == 'boost' then
    redis.call('RPUSH', boosts, pb)
  end
  redis.call('XADD', events, '*', 'event', event)
  -- A kudos begun before 334bb16 holds the Kudos itself (field 1, its id,
  -- first), not a KudosSent (field 1, the whole Kudos, longer than the id):
  -- it commits as the hash {pb, state, teams} it was then, which reads alike.
  if kind == 'kudos' and #id < 128 and string.sub(pb, 1, 2 + #id) == '\10' .. string.char(#id) .. id then
    local teams = {}
    for _, feed in ipairs(feed_list) do
      local team = string.match(feed, '^feed:team:(.+)$')
      if team then teams[#teams + 1] = team end
    end
    redis.call('HDEL', record, unpack(commit_only))
    redis.call('HSET', record, 'state', 'COMMITTED')
    if #teams > 0 then redis.call('HSET', record, 'teams', table.concat(teams, ',')) end
    return 'COMMITTED'
  end
  if kind == 'kudos' then
    redis.call('DEL', record)
    if write_record_key then
      redis.call('SET', record, pb)
    else
      redis.call('HSET', bucket, member, pb)
    end
    return 'COMMITTED'
  end
  redis.call('HDEL', record, 'pb', unpack(commit_only))
  redis.call('HSET', record, 'state', 'COMMITTED')
  redis.call('EXPIRE', record, ttl_s)
  return 'COMMITTED'
end
release_pair_caps()
redis.call('HDEL', record, 'pb', unpack(commit_only))
redis.call('HSET', record, 'state', 'ABORTED', 'error_code', ARGV[4], 'error_message', ARGV[5])
-- A kudos record may be its own request key (begin_recognition.lua,
-- record_keyed): it keeps the fingerprint a retry is told apart by.
if kind == 'kudos' and fields[13] then redis.call('HSET', record, 'fp', fields[13]) end
redis.call('EXPIRE', record, ttl_s)
return 'ABORTED'
