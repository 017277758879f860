-- Moves a batch of old committed kudos (one month, seq ascending, above
-- everything archived so far) into one archive chunk, atomically: the chunk
-- written (new, or the month's open chunk rewritten with the batch appended),
-- the id index extended, the live records and feed entries removed. Refuses
-- with 'CONFLICT' (nothing written) when another replica moved first.
-- Every key it touches is in KEYS (Archiver::ArchiveMonth computes them):
-- KEYS[1] = archive:chunks  KEYS[2] = archive:months  KEYS[3] = archive:index
-- KEYS[4] = archive:<month>:<chunk> (the chunk written)
-- then per kudos: its record (kudos:<id>), its boosts list (boosts:<id>), its
--   bucket (kb:<n>, KudosStore::RecordBucketKey), and per feed of it: the
--   head, its chunk list (<feed>#), and <feed>#<chunk> of the sealed chunk
--   the caller found holding the kudos (the head again when none)
-- ARGV: month (YYYY-MM), chunk (number in the month), chunk_bytes, max_seq,
--       min_new_seq, expected_score ('' = a new chunk, else the open chunk's
--       current score), n, then n times: id, feed member (KudosStore::FeedMember:
--       the id packed; entries written before the packing hold the id itself;
--       also the kudos's field in its bucket),
--       seq, boosts_archived, index_field, index_record, feed_count, then
--       feed_count times: feed, chunk ('' = none)
-- Returns 'OK', 'CONFLICT', or 'NEED' (nothing written) when a kudos is in a
-- sealed chunk other than the one declared for it: read the chunks again.
local chunks, months, index, chunk_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local month, chunk, bytes = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_seq, min_new, expected, n = ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local name = month .. ':' .. chunk
local top = redis.call('ZRANGE', chunks, -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= min_new then return 'CONFLICT' end
if expected == '' then
  if tonumber(redis.call('HGET', months, month) or '0') ~= chunk then return 'CONFLICT' end
elseif top[1] ~= name or tonumber(top[2]) ~= tonumber(expected) then
  return 'CONFLICT'
end

-- Where the kudos (at `seq`) is in a feed: its head, or the sealed chunk
-- whose range holds `seq` (finish_recognition.lua). Nil when the chunk holding
-- it is not the declared one. Its entry is `member`, `id` when written
-- before the packing, or (feeds other than feed:all, since entries by seq)
-- `seq` itself.
local function locate(head, dir, declared_chunk, declared_key, seq, id, member)
  if redis.call('ZSCORE', head, member) or (member ~= id and redis.call('ZSCORE', head, id)) or
      redis.call('ZSCORE', head, seq) then
    return {head = head}
  end
  local found = redis.call('ZRANGE', dir, seq, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
  if not found then return {} end
  if found ~= declared_chunk then return nil end
  return {dir = dir, chunk = found, key = declared_key}
end

-- Plan first: every check before anything is written.
local items, i, k = {}, 8, 5
for item = 1, n do
  local nf = tonumber(ARGV[i + 6])
  local record, boosts, bucket = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  -- Committed kudos are fields of their bucket; before the buckets STRINGs,
  -- or hashes in state COMMITTED from before 334bb16. Gone (archived by
  -- another replica) or another hash is a conflict.
  if redis.call('HEXISTS', bucket, ARGV[i + 1]) == 0 then
    local kind = redis.call('TYPE', record).ok
    if kind == 'hash' then
      if redis.call('HGET', record, 'state') ~= 'COMMITTED' then return 'CONFLICT' end
    elseif kind ~= 'string' then
      return 'CONFLICT'
    end
  end
  local places = {}
  for f = 1, nf do
    local at = k + 3 + 3 * (f - 1)
    local place = locate(KEYS[at], KEYS[at + 1], ARGV[i + 6 + 2 * f], KEYS[at + 2], ARGV[i + 2], ARGV[i],
      ARGV[i + 1])
    if not place then return 'NEED' end
    places[f] = place
  end
  items[item] = {at = i, record = record, boosts = boosts, bucket = bucket, places = places}
  i = i + 7 + 2 * nf
  k = k + 3 + 3 * nf
end

redis.call('SET', chunk_key, bytes)
redis.call('ZADD', chunks, max_seq, name)
if expected == '' then redis.call('HSET', months, month, chunk + 1) end
local add = {}
for _, item in ipairs(items) do
  local at = item.at
  local id, member, boosts, field = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 3]), ARGV[at + 4]
  local seq = ARGV[at + 2]  -- a kudos's entry in feeds other than feed:all
  redis.call('HDEL', item.bucket, member)
  redis.call('DEL', item.record)
  -- Boosts committed since the batch was read stay live, after the archived ones.
  if boosts > 0 then redis.call('LTRIM', item.boosts, boosts, -1) end
  for _, place in ipairs(item.places) do
    if place.head then
      redis.call('ZREM', place.head, member, id, seq)
    elseif place.key then
      -- A chunk that empties leaves its feed's chunk list.
      redis.call('ZREM', place.key, member, id, seq)
      if redis.call('EXISTS', place.key) == 0 then redis.call('ZREM', place.dir, place.chunk) end
    end
  end
  add[field] = (add[field] or '') .. ARGV[at + 5]
end
for field, records in pairs(add) do
  redis.call('HSET', index, field, (redis.call('HGET', index, field) or '') .. records)
end
return 'OK'
