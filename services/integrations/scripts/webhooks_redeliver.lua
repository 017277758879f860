-- Queues a finished delivery again (same event id and body) behind the
-- subscription's pending ones, with a fresh retry window.
-- Declared: the subscription, the delivery (the queue's head when it was
-- empty). ARGS: subscription id, delivery id, now (ms), max pending.
local sub, did, now, max_pending = ARGS[1], ARGS[2], ARGS[3], tonumber(ARGS[4])
want_sub(sub)
want_delivery(did)
local need = need_keys()
if need then return need end
local d = D[did]
if redis.call('EXISTS', SUB[sub]) == 0 then
  return redis.error_reply('NOT_FOUND subscription_id: no subscription ' .. sub)
end
if redis.call('HGET', d, 'sub') ~= sub then
  return redis.error_reply('NOT_FOUND delivery_id: no delivery ' .. did ..
      ' in the log of subscription ' .. sub)
end
local state = redis.call('HGET', d, 'state')
if state ~= 'delivered' and state ~= 'dead' then
  return redis.error_reply('FAILED_PRECONDITION delivery_id: ' .. did .. ' is ' .. state ..
      ': it is still queued and goes out on its own')
end
local q = Q[sub]
local pending = redis.call('LLEN', q)
if pending >= max_pending then
  return redis.error_reply('RESOURCE_EXHAUSTED the subscription has ' .. pending ..
      ' pending deliveries, at most ' .. max_pending .. '; retry once they went out')
end
redis.call('LREM', DONE[sub], 1, did)
redis.call('HSET', d, 'state', 'pending', 'attempts', 0, 'http', 0, 'error', '',
    'queued_ms', now, 'next_ms', now, 'lease', '', 'lease_until', 0)
redis.call('RPUSH', q, did)
if pending == 0 then schedule(sub) end
return redis.call('HGETALL', d)
