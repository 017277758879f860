-- Last step of a kudos or a boost, once the ledger answered: COMMITTED
-- (indexes, event) or ABORTED (caps released). Only a PENDING record moves,
-- so a retry racing the reconciler finishes it exactly once.
-- What only the commit needed leaves the record: a committed kudos becomes a
-- STRING holding its pb alone (a kudos.v1.KudosSent: the kudos and its teams;
-- a hash with a pb over 64 bytes is a hashtable, twice the memory); a
-- committed boost (its pb is in the kudos's boosts list) and an aborted
-- record stay hashes of their state (and error) for retries, and expire with
-- the retry window (ttl_s).
-- KEYS[1] = "kudos:{org}:"
-- ARGV: kind, id, outcome ("COMMITTED"|"ABORTED"), error_code, error_message
local p = KEYS[1]
local kind, id, outcome = ARGV[1], ARGV[2], ARGV[3]

-- A feed is a head ZSET p..feed (its newest entries) and, once the head
-- reached 128 entries, sealed chunks p..feed..'#'..<max seq> of its oldest
-- 64 at a time, listed in p..feed..'#' (member = score = the chunk's
-- highest seq). Every ZSET stays within 128 entries, a listpack (~30 bytes
-- an entry instead of ~110 in a skiplist). Chunks never overlap: a chunk
-- holds (the previous chunk's max, its max]. A commit adds to the head
-- (two commands); an entry below the top chunk's max (committed late)
-- stays in the head until sealing moves it to the chunk whose range holds
-- it, and readers merge the head with the chunks by seq, so it lists in its
-- place meanwhile. Readers: KudosStore's feed_range; archive_batch.lua.
local function feed_add(feed, seq)
  local head = p .. feed
  redis.call('ZADD', head, seq, id)
  if redis.call('ZCARD', head) < 128 then return end
  local dir = head .. '#'
  local top = tonumber(redis.call('ZRANGE', dir, -1, -1, 'WITHSCORES')[2] or '0')
  local oldest = redis.call('ZRANGE', head, 0, 63, 'WITHSCORES')
  local args, max = {}, nil
  for i = 1, #oldest, 2 do
    local member, score = oldest[i], oldest[i + 1]
    if tonumber(score) <= top then
      local chunk = redis.call('ZRANGE', dir, score, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
      redis.call('ZADD', dir .. chunk, score, member)
    else
      args[#args + 1] = score
      args[#args + 1] = member
      max = score
    end
  end
  if max then
    redis.call('ZADD', dir .. max, unpack(args))
    redis.call('ZADD', dir, max, max)
  end
  redis.call('ZREMRANGEBYRANK', head, 0, 63)
end

local record = p .. kind .. ':' .. id
if redis.call('TYPE', record).ok == 'string' then return 'COMMITTED' end
local state = redis.call('HGET', record, 'state')
if not state then
  return redis.error_reply('NOT_FOUND ' .. kind .. " '" .. id .. "' does not exist")
end
if state ~= 'PENDING' then return state end
local fields = redis.call('HMGET', record, 'seq', 'feeds', 'kudos_id', 'pb', 'event', 'points',
  'actor', 'week', 'recipients', 'ttl_s')
local seq, feeds, kudos_id, pb, event = fields[1], fields[2] or '', fields[3], fields[4], fields[5]
local points, actor, week, recipients = tonumber(fields[6]) or 0, fields[7], fields[8], fields[9] or ''
local ttl_s = tonumber(fields[10]) or 30 * 24 * 3600
local commit_only = {'actor', 'fp', 'seq', 'points', 'week', 'kudos_id', 'recipients', 'transfers',
  'event', 'feeds', 'create_ms', 'ttl_s', 'reconcile_attempts', 'reconcile_error', 'dead_letter_time'}
redis.call('ZREM', p .. 'pending', kind .. ':' .. id)
if outcome == 'COMMITTED' then
  for feed in string.gmatch(feeds, '[^,]+') do feed_add(feed, seq) end
  if kind == 'boost' then
    redis.call('RPUSH', p .. 'boosts:' .. kudos_id, pb)
  end
  redis.call('XADD', p .. 'events', '*', 'event', event)
  -- A kudos begun before 334bb16 holds the Kudos itself (field 1, its id,
  -- first), not a KudosSent (field 1, the whole Kudos, longer than the id):
  -- it commits as the hash {pb, state, teams} it was then, which reads alike.
  if kind == 'kudos' and #id < 128 and string.sub(pb, 1, 2 + #id) == '\10' .. string.char(#id) .. id then
    local teams = {}
    for feed in string.gmatch(feeds, '[^,]+') do
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
    redis.call('SET', record, pb)
    return 'COMMITTED'
  end
  redis.call('HDEL', record, 'pb', unpack(commit_only))
  redis.call('HSET', record, 'state', 'COMMITTED')
  redis.call('EXPIRE', record, ttl_s)
  return 'COMMITTED'
end
if points > 0 then
  local pairs_key = p .. 'pairs:' .. actor .. ':' .. week
  for recipient in string.gmatch(recipients, '[^,]+') do
    -- Into the hash even when reserved in a pre-hash counter: the cap reads their sum.
    redis.call('HINCRBY', pairs_key, recipient, -points)
  end
  -- The hash may be new here (reserved in a pre-hash counter, or already
  -- expired): it must never outlive its week, as begin_recognition sets.
  if redis.call('TTL', pairs_key) < 0 then redis.call('EXPIRE', pairs_key, 8 * 24 * 3600) end
end
redis.call('HDEL', record, 'pb', unpack(commit_only))
redis.call('HSET', record, 'state', 'ABORTED', 'error_code', ARGV[4], 'error_message', ARGV[5])
redis.call('EXPIRE', record, ttl_s)
return 'ABORTED'
