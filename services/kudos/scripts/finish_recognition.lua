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
  for feed in string.gmatch(feeds, '[^,]+') do
    redis.call('ZADD', p .. feed, seq, id)
  end
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
  for recipient in string.gmatch(recipients, '[^,]+') do
    redis.call('DECRBY', p .. 'pair:' .. actor .. ':' .. recipient .. ':' .. week, points)
  end
end
redis.call('HDEL', record, 'pb', unpack(commit_only))
redis.call('HSET', record, 'state', 'ABORTED', 'error_code', ARGV[4], 'error_message', ARGV[5])
redis.call('EXPIRE', record, ttl_s)
return 'ABORTED'
