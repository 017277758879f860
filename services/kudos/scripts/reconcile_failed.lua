-- After a reconcile attempt that left a record PENDING: keeps the reason on
-- the record and, after the last allowed attempt, takes it out of the queue
-- into the org's dead-letter stream (capped: the oldest entries go). The record stays PENDING: its
-- ledger outcome is unknown, so nothing is committed or released; a client
-- retry with its request_id still finishes it.
-- KEYS[1] = the record (<kind>:<id>)  KEYS[2] = pending  KEYS[3] = deadletter
-- ARGV: kind, id, attempts, max_attempts, reason, time, max_dead_letters
-- Returns 'SETTLED' (finished meanwhile), 'RETRY' or 'DEAD'.
local record, pending, deadletter = KEYS[1], KEYS[2], KEYS[3]
local kind, id, attempts, max_attempts = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reason, time, max_dead = ARGV[5], ARGV[6], ARGV[7]
-- A committed kudos is a STRING (finish_recognition.lua).
if redis.call('TYPE', record).ok ~= 'hash' or redis.call('HGET', record, 'state') ~= 'PENDING' then
  return 'SETTLED'
end
redis.call('HSET', record, 'reconcile_error', reason)
if attempts < max_attempts then return 'RETRY' end
redis.call('ZREM', pending, kind .. ':' .. id)
redis.call('HSET', record, 'dead_letter_time', time)
redis.call('XADD', deadletter, 'MAXLEN', max_dead, '*', 'kind', kind, 'id', id,
  'attempts', tostring(attempts), 'reason', reason, 'time', time)
return 'DEAD'
