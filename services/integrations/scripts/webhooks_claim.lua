-- Takes the head delivery of one subscription for one attempt, if it is due
-- and nobody holds it: a lease that expires, so a replica that dies
-- mid-request hands it on. One subscription has at most one delivery in
-- flight: its deliveries go out in order.
-- KEYS[1] = P. ARGV: subscription id, owner, now (ms), lease (ms).
-- Returns nil, or {delivery id, event id, type, body, url, secret, attempts}.
local sub, owner, now, lease_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local skey = P .. 'sub:' .. sub
if redis.call('EXISTS', skey) == 0 then
  redis.call('ZREM', P .. 'due', sub)
  return nil
end
if redis.call('HGET', skey, 'paused') == '1' then
  redis.call('ZREM', P .. 'due', sub)
  return nil
end
local head = redis.call('LINDEX', P .. 'q:' .. sub, 0)
if not head then
  redis.call('ZREM', P .. 'due', sub)
  return nil
end
local d = P .. 'd:' .. head
local f = redis.call('HMGET', d, 'next_ms', 'lease_until', 'event', 'type', 'body', 'attempts')
if tonumber(f[1]) > now or tonumber(f[2]) > now then
  schedule(sub)
  return nil
end
local attempts = tonumber(f[6]) + 1
redis.call('HSET', d, 'lease', owner, 'lease_until', now + lease_ms, 'attempts', attempts,
    'last_ms', now)
redis.call('ZADD', P .. 'due', now + lease_ms, sub)
local s = redis.call('HMGET', skey, 'url', 'secret')
return {head, f[3], f[4], f[5], s[1], s[2], attempts}
