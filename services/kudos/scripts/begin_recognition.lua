-- First step of a kudos or a boost: idempotency, rate limit and weekly pair
-- caps, checked and reserved atomically, and a PENDING record written.
-- A retry with the same (actor, request_id) finds the first record instead.
-- KEYS (every key it touches, KudosStore::BeginKeys): [1] the request key
--   (<kind>req:<actor>:<request_id>), [2] rate:<actor>:<minute_key>,
--   [3] pairs:<actor>:<week_key>, [4] seq, [5] the record (<kind>:<id>),
--   [6] pending, [6 + i] pair:<actor>:<recipient_i>:<week_key> (the counters
--   before the pairs hash, still read) for i = 1..n, [7 + n] directory_version,
--   [8 + n] archive:index, [9 + n] kb:<bucket> (the bucket a committed kudos
--   of this id would be in, KudosStore::RecordBucketKey)
-- ARGV: kind ("kudos"|"boost"), actor, request_id, fingerprint, record_id,
--       record_pb, now_ms, minute_key, rate_limit, retry_after_s, week_key,
--       pair_cap, points, kudos_id (boosts), n, recipient_1..recipient_n,
--       transfers (serialized ledger.v1.PostTransfersRequest, may be empty),
--       event (the serialized event to append on commit), feeds (the feed
--       keys to index a committed kudos under, comma-separated),
--       reconcile_at_ms (when the reconciler first tries to finish it),
--       idempotency_ttl_s (the org's retry window: the request key expires
--       then, and the record once it is finished unless it is a committed kudos),
--       zero_pb, zero_event (issue 18, may be empty: the record and event of the
--       same kudos with 0 points, committed instead when the giver's allowance
--       is spent and the org allows kudos without points),
--       directory_version (may be empty: the version of the directory the
--       caller validated against, when it came from its cache; another
--       version answers {'STALE'} with nothing written: read it again),
--       packed_request (KudosStore::PackedRequestValue: the request key as a
--       28-byte STRING, fingerprint and packed id; empty: the hash {id, fp}),
--       record_keyed ('1': the id follows from the request, KudosIdOfRequest,
--       so the record answers a retry and no request key is written unless
--       write_request_key is '1'), write_request_key, archive_field and
--       archive_digest (where the archive's index would name the id),
--       record_member (the id's field in its bucket, KudosStore::FeedMember)
-- Returns {'NEW', id, fp, seq}, {'EXISTING', id, fp} (a hash request key, or
-- the record-keyed record itself), {'EXISTING_PACKED', value} (a STRING
-- request key), {'ARCHIVED', id} (a record-keyed kudos already archived) or
-- {'STALE'}.
-- The record keeps everything the commit needs, so whoever finishes it
-- (the caller, a retry or the reconciler) needs nothing but its id.
local req_key, rate_key, pairs_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local record, pending = KEYS[5], KEYS[6]
local kind, actor, request_id, fp, id, pb = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now_ms, minute_key, rate_limit, retry_after = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
local week_key, pair_cap, points = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
local kudos_id, n = ARGV[14], tonumber(ARGV[15])
local transfers, event, feeds = ARGV[16 + n], ARGV[17 + n], ARGV[18 + n]
local reconcile_at_ms = ARGV[19 + n]
local ttl_s = tonumber(ARGV[20 + n]) or 30 * 24 * 3600
local zero_pb, zero_event = ARGV[21 + n] or '', ARGV[22 + n] or ''
local directory_version = ARGV[23 + n] or ''
local packed_request = ARGV[24 + n] or ''
local record_keyed, write_request_key = ARGV[25 + n] == '1', ARGV[26 + n] == '1'
local archive_field, archive_digest = ARGV[27 + n] or '', ARGV[28 + n] or ''
local record_member = ARGV[29 + n] or id

-- A record-keyed kudos is its own request key: a PENDING or ABORTED hash
-- keeps the stored fingerprint, a committed one (its bucket's field, or a
-- STRING under its own key when committed before the buckets) starts with
-- the marker '\2' and the fingerprint's first 8 bytes (KudosStore::StoredRecordPb).
-- The fingerprint a committed record's bytes start with ('' for the forms
-- before it was kept).
local function committed_fp(bytes)
  return string.byte(bytes, 1) == 2 and string.sub(bytes, 2, 9) or ''
end
local function existing_record()
  local committed = redis.call('HGET', KEYS[9 + n], record_member)
  if committed then return {'EXISTING', id, committed_fp(committed)} end
  local type_of = redis.call('TYPE', record).ok
  if type_of == 'hash' then return {'EXISTING', id, redis.call('HGET', record, 'fp') or ''} end
  if type_of ~= 'string' then return nil end
  return {'EXISTING', id, committed_fp(redis.call('GETRANGE', record, 0, 8))}
end

-- Whether the archive's index holds the id's digest (12-byte records, the
-- digest first): the id is taken by an archived kudos.
local function archived()
  local records = redis.call('HGET', KEYS[8 + n], archive_field)
  if not records then return false end
  local at = 1
  while true do
    local found = string.find(records, archive_digest, at, true)
    if not found then return false end
    if (found - 1) % 12 == 0 then return true end
    at = found + 1
  end
end

-- GET answers a STRING request key; a hash (written before, or an id that
-- does not pack) answers WRONGTYPE, then HMGET.
local existing = redis.pcall('GET', req_key)
if type(existing) == 'string' then return {'EXISTING_PACKED', existing} end
if existing then
  local fields = redis.call('HMGET', req_key, 'id', 'fp')
  if fields[1] then return {'EXISTING', fields[1], fields[2]} end
end
if record_keyed then
  local found = existing_record()
  if found then return found end
  if archived() then return {'ARCHIVED', id} end
end
-- Validated against a cached directory: only if no directory write came since
-- (put_settings.lua and put_directory_entry.lua increment the version).
if directory_version ~= '' and (redis.call('GET', KEYS[7 + n]) or '0') ~= directory_version then
  return {'STALE'}
end

local sent = tonumber(redis.call('GET', rate_key) or '0')
if sent >= rate_limit then
  return redis.error_reply('RESOURCE_EXHAUSTED rate limit: at most ' .. rate_limit ..
    ' kudos and boosts per minute; retry after ' .. retry_after .. 's')
end
-- Points given per (giver, week): one hash, field = recipient (a listpack:
-- one key per giver and week, not one per pair). Counters written before
-- the hash existed (pair:<giver>:<recipient>:<week>, gone within 8 days)
-- still count.
if points > 0 then
  for i = 1, n do
    local recipient = ARGV[15 + i]
    local given = tonumber(redis.call('HGET', pairs_key, recipient) or '0') +
      tonumber(redis.call('GET', KEYS[6 + i]) or '0')
    if given + points > pair_cap then
      return redis.error_reply('RESOURCE_EXHAUSTED recipient_ids[' .. (i - 1) .. "]: '" .. recipient ..
        "' already got " .. given .. ' of the weekly cap of ' .. pair_cap ..
        ' points from you this week (' .. week_key .. ')')
    end
  end
end

redis.call('INCR', rate_key)
redis.call('EXPIRE', rate_key, 120)
if points > 0 then
  for i = 1, n do redis.call('HINCRBY', pairs_key, ARGV[15 + i], points) end
  redis.call('EXPIRE', pairs_key, 8 * 24 * 3600)
end
local seq = redis.call('INCR', seq_key)
redis.call('HSET', record, 'pb', pb, 'state', 'PENDING', 'actor', actor, 'fp', fp, 'seq', seq,
  'points', points, 'week', week_key, 'kudos_id', kudos_id, 'recipients', table.concat(ARGV, ',', 16, 15 + n),
  'transfers', transfers, 'event', event, 'feeds', feeds, 'create_ms', now_ms, 'ttl_s', ttl_s)
if zero_pb ~= '' then redis.call('HSET', record, 'zero_pb', zero_pb, 'zero_event', zero_event) end
if record_keyed and not write_request_key then
  -- The record is the request key.
elseif packed_request ~= '' then
  redis.call('SET', req_key, packed_request, 'EX', ttl_s)
else
  redis.call('HSET', req_key, 'id', id, 'fp', fp)
  redis.call('EXPIRE', req_key, ttl_s)
end
-- The reconcile queue, by next attempt time.
redis.call('ZADD', pending, reconcile_at_ms, kind .. ':' .. id)
-- The seq names the feed chunk this record's commit may seal (finish_recognition.lua).
return {'NEW', id, fp, seq}
