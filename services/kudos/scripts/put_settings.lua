-- Replaces the org's settings and records the change (event + audit).
-- KEYS[1] = settings  KEYS[2] = the org's event stream  KEYS[3] = "audit:{org}"
-- KEYS[4] = the org registry of the org's slot (common/redis/org_registry.h)
-- KEYS[5] = directory_version (incremented: replicas' cached directories are stale)
-- (every key the script touches, so a slot migration routes it whole)
-- ARGV: pb, event, org, actor, time
local settings, events, audit, registry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
redis.call('SET', settings, ARGV[1])
redis.call('XADD', events, '*', 'event', ARGV[2])
redis.call('XADD', audit, '*', 'actor', ARGV[4], 'action', 'update_settings', 'target', ARGV[3],
  'reason', '', 'time', ARGV[5])
redis.call('SADD', registry, ARGV[3])
redis.call('INCR', KEYS[5])
return 'OK'
