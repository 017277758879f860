-- Links a Slack user to a person, within the org's bound on links.
-- KEYS[1] integrations:{org}:slack:users (HASH slack user id -> person id)
-- KEYS[2] integrations:{org}:slack:user_ids (ZSET, score 0: ids in order, for paging)
-- ARGV[1] slack user id, ARGV[2] person id, ARGV[3] most links per org
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and
   redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.error_reply('RESOURCE_EXHAUSTED mapping: the org already links its maximum of ' ..
                           ARGV[3] .. ' Slack users; delete unused links first')
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
