-- Last step of a retraction, once the ledger holds every reversal: the
-- KudosRetracted event (the leaderboard takes the counts back), the audit
-- record naming the admin, the kudos' open reports closed as ACTIONED. Runs
-- its effects once: only a REVERSING retraction moves to DONE.
-- KEYS[1] = social:retraction:<kudos>  KEYS[2] = the event stream  KEYS[3] = audit:{org}
-- KEYS[4] = social:reports  KEYS[5] = social:reports:open  KEYS[6] = social:reports:closed
-- KEYS[7] = social:reports:kudos:<kudos>
-- ARGV: kudos_id, event pb, now_ms, time (RFC 3339), retraction ttl_s, reversal ids
--       (comma-separated), n, then n times: report id, old pb, new pb (ACTIONED)
-- Returns {'DONE', reversal ids, reports closed} or 'CHANGED' (the kudos'
-- open reports are not the ones passed: read them again).
local retraction, events, audit = KEYS[1], KEYS[2], KEYS[3]
local reports, open, closed, by_kudos = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local kudos_id, event, now_ms, time, ttl_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local n = tonumber(ARGV[7])
-- A score after every one already in `zset` (ties would order by the random ids).
local function next_score(zset, now_ms)
  local top = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')[2]
  return math.max(tonumber(now_ms), (tonumber(top) or 0) + 1)
end
local state = redis.call('HGET', retraction, 'state')
if state == 'DONE' then
  local done = redis.call('HMGET', retraction, 'reversals', 'reports_closed')
  return {'DONE', done[1] or '', tonumber(done[2] or '0')}
end
if state ~= 'REVERSING' then
  return redis.error_reply("FAILED_PRECONDITION kudos '" .. kudos_id .. "' is not being retracted")
end
if redis.call('HLEN', by_kudos) ~= n then return 'CHANGED' end
for i = 0, n - 1 do
  local id = ARGV[8 + 3 * i]
  if redis.call('HGET', reports, id) ~= ARGV[9 + 3 * i] then return 'CHANGED' end
end
local fields = redis.call('HMGET', retraction, 'admin', 'reason')
for i = 0, n - 1 do
  local id = ARGV[8 + 3 * i]
  redis.call('HSET', reports, id, ARGV[10 + 3 * i])
  redis.call('ZREM', open, id)
  redis.call('ZADD', closed, next_score(closed, now_ms), id)
end
redis.call('DEL', by_kudos)
redis.call('XADD', events, '*', 'event', event)
redis.call('XADD', audit, '*', 'actor', fields[1], 'action', 'retract_kudos', 'target', kudos_id,
  'reason', fields[2], 'time', time)
redis.call('HSET', retraction, 'state', 'DONE', 'reversals', ARGV[6], 'reports_closed', n)
-- Kept for the retry window; the kudos' record keeps retracted = true.
redis.call('EXPIRE', retraction, ttl_s)
return {'DONE', ARGV[6], n}
