-- Queues a finished delivery again (same event id and body) behind the
-- subscription's pending ones, with a fresh retry window.
-- KEYS[1] = P. ARGV: subscription id, delivery id, now (ms), max pending.
local sub, did, now, max_pending = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local d = P .. 'd:' .. did
if redis.call('EXISTS', P .. 'sub:' .. sub) == 0 then
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
local q = P .. 'q:' .. sub
local pending = redis.call('LLEN', q)
if pending >= max_pending then
  return redis.error_reply('RESOURCE_EXHAUSTED the subscription has ' .. pending ..
      ' pending deliveries, at most ' .. max_pending .. '; retry once they went out')
end
redis.call('LREM', P .. 'done:' .. sub, 1, did)
redis.call('HSET', d, 'state', 'pending', 'attempts', 0, 'http', 0, 'error', '',
    'queued_ms', now, 'next_ms', now, 'lease', '', 'lease_until', 0)
redis.call('RPUSH', q, did)
if pending == 0 then schedule(sub) end
return redis.call('HGETALL', d)
