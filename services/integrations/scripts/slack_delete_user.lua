-- Unlinks a Slack user. KEYS as in slack_put_user.lua; ARGV[1] slack user id.
-- Returns 1 when a link was there.
local deleted = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return deleted
