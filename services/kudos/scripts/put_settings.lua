-- Replaces the org's settings and records the change (event + audit).
-- KEYS[1] = "kudos:{org}:"  KEYS[2] = "audit:{org}"
-- KEYS[3] = the org registry of the org's slot (common/redis/org_registry.h)
-- ARGV: pb, event, org, actor, time
local p, audit, registry = KEYS[1], KEYS[2], KEYS[3]
redis.call('SET', p .. 'settings', ARGV[1])
redis.call('XADD', p .. 'events', '*', 'event', ARGV[2])
redis.call('XADD', audit, '*', 'actor', ARGV[4], 'action', 'update_settings', 'target', ARGV[3],
  'reason', '', 'time', ARGV[5])
redis.call('SADD', registry, ARGV[3])
return 'OK'
