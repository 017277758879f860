-- Takes the head delivery of one subscription for one attempt, if it is due
-- and nobody holds it: a lease that expires, so a replica that dies
-- mid-request hands it on. One subscription has at most one delivery in
-- flight: its deliveries go out in order.
-- Declared: the subscription, its queue's head (the caller read it with the
-- due subscriptions). ARGS: subscription id, owner, now (ms), lease (ms), log size.
-- Returns nil, or {delivery id, event id, type, body, url, secret, attempts,
-- {the deliveries webhooks_finish will touch besides this one: the next
-- head, the log's tail it trims}}.
local sub, owner, now, lease_ms = ARGS[1], ARGS[2], tonumber(ARGS[3]), tonumber(ARGS[4])
local log_size = tonumber(ARGS[5])
want_sub(sub)
want_head(sub)
local need = need_keys()
if need then return need end
local skey = SUB[sub]
if redis.call('EXISTS', skey) == 0 then
  redis.call('ZREM', DUE, sub)
  return nil
end
if redis.call('HGET', skey, 'paused') == '1' then
  redis.call('ZREM', DUE, sub)
  return nil
end
local head = redis.call('LINDEX', Q[sub], 0)
if not head then
  redis.call('ZREM', DUE, sub)
  return nil
end
local d = D[head]
local f = redis.call('HMGET', d, 'next_ms', 'lease_until', 'event', 'type', 'body', 'attempts')
if tonumber(f[1]) > now or tonumber(f[2]) > now then
  schedule(sub)
  return nil
end
local attempts = tonumber(f[6]) + 1
redis.call('HSET', d, 'lease', owner, 'lease_until', now + lease_ms, 'attempts', attempts,
    'last_ms', now)
redis.call('ZADD', DUE, now + lease_ms, sub)
local s = redis.call('HMGET', skey, 'url', 'secret')
local finish_touches = {}
local next_head = redis.call('LINDEX', Q[sub], 1)
if next_head then finish_touches[#finish_touches + 1] = next_head end
local log_length = redis.call('LLEN', DONE[sub])
local excess = math.min(log_length + 1 - log_size, log_length)
if excess > 0 then
  for _, did in ipairs(redis.call('LRANGE', DONE[sub], -excess, -1)) do
    finish_touches[#finish_touches + 1] = did
  end
end
return {head, f[3], f[4], f[5], s[1], s[2], attempts, finish_touches}
