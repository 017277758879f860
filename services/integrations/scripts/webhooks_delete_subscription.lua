-- Deletes a subscription with its pending deliveries and its log (bounded:
-- at most the pending cap plus the log size), and drops groups no longer needed.
-- Declared: every subscription (the groups depend on all their types), every
-- delivery in the subscription's queue and log. ARGS: id.
local sub = ARGS[1]
want_sub(sub)
want_every_sub()
if SUB[sub] then
  for _, list in ipairs({Q[sub], DONE[sub]}) do
    for _, did in ipairs(redis.call('LRANGE', list, 0, -1)) do want_delivery(did) end
  end
end
local need = need_keys()
if need then return need end
if redis.call('SREM', SUBS, sub) == 0 then
  return redis.error_reply('NOT_FOUND subscription_id: no subscription ' .. sub)
end
for _, list in ipairs({Q[sub], DONE[sub]}) do
  for _, did in ipairs(redis.call('LRANGE', list, 0, -1)) do
    redis.call('DEL', delivery_key(did))
  end
  redis.call('DEL', list)
end
redis.call('DEL', SUB[sub])
redis.call('ZREM', DUE, sub)
local err = reconcile_groups()
if err then return err end
return 1
