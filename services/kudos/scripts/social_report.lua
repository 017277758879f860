-- A member reports a kudos: one open report per reporter per kudos, at most
-- `max_open` open reports per org.
-- KEYS[1] = social:reports (HASH report id -> Report pb)
-- KEYS[2] = social:reports:open (ZSET report id by create ms)
-- KEYS[3] = social:reports:kudos:<kudos> (HASH reporter -> open report id)
-- ARGV: report_id, reporter, pb, now_ms, max_open
-- Returns {'CREATED', pb} or {'EXISTING', pb} (the reporter's open report).
local reports, open, by_kudos = KEYS[1], KEYS[2], KEYS[3]
local id, reporter, pb, now_ms, max_open = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
-- A score after every one already in `zset` (ties would order by the random ids).
local function next_score(zset, now_ms)
  local top = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')[2]
  return math.max(tonumber(now_ms), (tonumber(top) or 0) + 1)
end
local existing = redis.call('HGET', by_kudos, reporter)
if existing then
  local earlier = redis.call('HGET', reports, existing)
  if earlier then return {'EXISTING', earlier} end
  redis.call('HDEL', by_kudos, reporter)  -- a report dropped by the closed reports' trim
end
local count = redis.call('ZCARD', open)
if count >= max_open then
  return redis.error_reply('RESOURCE_EXHAUSTED the org has ' .. count ..
    ' open reports, the most it keeps; an admin must dismiss or act on some first')
end
redis.call('HSET', reports, id, pb)
redis.call('ZADD', open, next_score(open, now_ms), id)
redis.call('HSET', by_kudos, reporter, id)
return {'CREATED', pb}
