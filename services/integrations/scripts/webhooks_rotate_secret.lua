-- Replaces a subscription's signing secret.
-- Declared: the subscription. ARGS: id, secret.
local sub, secret = ARGS[1], ARGS[2]
want_sub(sub)
local need = need_keys()
if need then return need end
if redis.call('EXISTS', SUB[sub]) == 0 then
  return redis.error_reply('NOT_FOUND subscription_id: no subscription ' .. sub)
end
redis.call('HSET', SUB[sub], 'secret', secret)
return 1
