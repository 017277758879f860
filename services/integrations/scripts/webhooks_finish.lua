-- Records the outcome of one attempt, only by the lease's owner: a replica
-- whose lease lapsed and was taken over changes nothing, so a delivery is
-- never marked twice. Success: the next delivery becomes the head. Failure:
-- retried at ARGV retry time, or dead-lettered past the retry window; the
-- subscription pauses itself after `pause_after` consecutive failures.
-- KEYS[1] = P. ARGV: subscription id, delivery id, owner, now (ms), ok (1|0),
--   HTTP status, error, retry at (ms), retry window (ms), pause after, log size.
local sub, did, owner, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ok, http, err = ARGV[5] == '1', ARGV[6], ARGV[7]
local retry_at, window = tonumber(ARGV[8]), tonumber(ARGV[9])
local pause_after, log_size = tonumber(ARGV[10]), tonumber(ARGV[11])
local d = P .. 'd:' .. did
local q = P .. 'q:' .. sub
if redis.call('HGET', d, 'lease') ~= owner then return 0 end
if redis.call('LINDEX', q, 0) ~= did then return 0 end
local skey = P .. 'sub:' .. sub
redis.call('HSET', d, 'lease', '', 'lease_until', 0, 'http', http, 'error', err)
if ok then
  redis.call('HSET', d, 'state', 'delivered')
  redis.call('LPOP', q)
  push_done(sub, did, log_size)
  redis.call('HSET', skey, 'failures', 0)
  schedule(sub)
  return 1
end
local failures = redis.call('HINCRBY', skey, 'failures', 1)
if retry_at > tonumber(redis.call('HGET', d, 'queued_ms')) + window then
  redis.call('HSET', d, 'state', 'dead')
  redis.call('LPOP', q)
  push_done(sub, did, log_size)
else
  redis.call('HSET', d, 'state', 'failed', 'next_ms', retry_at)
end
if failures >= pause_after and redis.call('HGET', skey, 'paused') ~= '1' then
  redis.call('HSET', skey, 'paused', '1', 'paused_reason',
      'paused after ' .. failures .. ' consecutive failed attempts; resume with UpdateSubscription')
end
schedule(sub)
return 1
