-- The reconciler claims one due PENDING record for an attempt: counts the
-- attempt and moves the record's next attempt out by its backoff before the
-- ledger is called, so a crash mid-attempt, another replica, or a record
-- that never settles cannot hold the head of the queue.
-- KEYS[1] = pending (the reconcile queue)  KEYS[2] = the record (<kind>:<id>)
-- ARGV: kind, id, now_ms, first_backoff_ms, max_backoff_ms, jitter_ms
-- Returns the attempt number (>= 1), or 0 when the record is not due (another
-- replica claimed it) or no longer PENDING (then it leaves the queue).
local pending, record = KEYS[1], KEYS[2]
local kind, id = ARGV[1], ARGV[2]
local now_ms, first_ms, max_ms, jitter_ms =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local member = kind .. ':' .. id
local due = redis.call('ZSCORE', pending, member)
if not due or tonumber(due) > now_ms then return 0 end
-- A committed kudos is a STRING (finish_recognition.lua).
if redis.call('TYPE', record).ok ~= 'hash' or redis.call('HGET', record, 'state') ~= 'PENDING' then
  redis.call('ZREM', pending, member)
  return 0
end
local attempts = redis.call('HINCRBY', record, 'reconcile_attempts', 1)
local backoff = math.min(max_ms, first_ms * 2 ^ math.min(attempts - 1, 30))
redis.call('ZADD', pending, 'XX', math.floor(now_ms + backoff + jitter_ms), member)
return attempts
