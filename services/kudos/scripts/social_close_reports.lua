-- Closes open reports (an admin dismissed one, or retracted their kudos):
-- each moves from open to closed only if it is still as the caller read it.
-- Closed reports beyond `max_closed`, or closed before `cutoff_ms` (the org's
-- audit_days), are dropped (their audit records stay).
-- KEYS[1] = social:reports  KEYS[2] = social:reports:open  KEYS[3] = social:reports:closed
-- KEYS[4] = audit:{org}  KEYS[5..] = social:reports:kudos:<kudos> of each report
-- ARGV: now_ms, actor, time (RFC 3339), max_closed, cutoff_ms, audit action ('' = none),
--       n, then n times: report id, old pb, new pb, reporter, note
-- Returns 'CLOSED' or 'CHANGED' (nothing written: read again).
local reports, open, closed, audit = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now_ms, actor, time, max_closed, cutoff_ms, action =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local n = tonumber(ARGV[7])
-- A score after every one already in `zset` (ties would order by the random ids).
local function next_score(zset, now_ms)
  local top = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')[2]
  return math.max(tonumber(now_ms), (tonumber(top) or 0) + 1)
end
for i = 0, n - 1 do
  if redis.call('HGET', reports, ARGV[8 + 5 * i]) ~= ARGV[9 + 5 * i] then return 'CHANGED' end
end
for i = 0, n - 1 do
  local id, new_pb = ARGV[8 + 5 * i], ARGV[10 + 5 * i]
  local reporter, note = ARGV[11 + 5 * i], ARGV[12 + 5 * i]
  local by_kudos = KEYS[5 + i]
  redis.call('HSET', reports, id, new_pb)
  redis.call('ZREM', open, id)
  redis.call('ZADD', closed, next_score(closed, now_ms), id)
  if redis.call('HGET', by_kudos, reporter) == id then redis.call('HDEL', by_kudos, reporter) end
  if action ~= '' then
    redis.call('XADD', audit, '*', 'actor', actor, 'action', action, 'target', id,
      'reason', note, 'time', time)
  end
end
-- The closed reports' bounds: the newest max_closed, none older than the cutoff.
local over = math.min(redis.call('ZCARD', closed) - max_closed, 1000)
if over > 0 then
  local dropped = redis.call('ZRANGE', closed, 0, over - 1)
  redis.call('HDEL', reports, unpack(dropped))
  redis.call('ZREMRANGEBYRANK', closed, 0, over - 1)
end
local old = redis.call('ZRANGE', closed, '-inf', '(' .. cutoff_ms, 'BYSCORE', 'LIMIT', 0, 1000)
if #old > 0 then
  redis.call('HDEL', reports, unpack(old))
  redis.call('ZREM', closed, unpack(old))
end
return 'CLOSED'
