-- Records the outcome of one attempt, only by the lease's owner: a replica
-- whose lease lapsed and was taken over changes nothing, so a delivery is
-- never marked twice. Success: the next delivery becomes the head. Failure:
-- retried at ARGS retry time, or dead-lettered past the retry window; the
-- subscription pauses itself after `pause_after` consecutive failures.
-- Declared: the subscription, the delivery, and when it leaves the queue the
-- next head and the log's tail it trims (webhooks_claim returns them).
-- ARGS: subscription id, delivery id, owner, now (ms), ok (1|0), HTTP status,
--   error, retry at (ms), retry window (ms), pause after, log size.
local sub, did, owner, now = ARGS[1], ARGS[2], ARGS[3], tonumber(ARGS[4])
local ok, http, err = ARGS[5] == '1', ARGS[6], ARGS[7]
local retry_at, window = tonumber(ARGS[8]), tonumber(ARGS[9])
local pause_after, log_size = tonumber(ARGS[10]), tonumber(ARGS[11])
want_sub(sub)
want_delivery(did)
local need = need_keys()
if need then return need end
local d = D[did]
local q = Q[sub]
if redis.call('HGET', d, 'lease') ~= owner then return 0 end
if redis.call('LINDEX', q, 0) ~= did then return 0 end
local dead = not ok and retry_at > tonumber(redis.call('HGET', d, 'queued_ms')) + window
if ok or dead then
  -- It leaves the queue: schedule() reads the next head, push_done trims the log.
  local next_head = redis.call('LINDEX', q, 1)
  if next_head then want_delivery(next_head) end
  want_trimmed(sub, 1, log_size)
  need = need_keys()
  if need then return need end
end
local skey = SUB[sub]
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
if dead then
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
