-- Replaces a subscription's signing secret. KEYS[1] = P. ARGV: id, secret.
local key = P .. 'sub:' .. ARGV[1]
if redis.call('EXISTS', key) == 0 then
  return redis.error_reply('NOT_FOUND subscription_id: no subscription ' .. ARGV[1])
end
redis.call('HSET', key, 'secret', ARGV[2])
return 1
