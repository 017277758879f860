-- First step of a retraction: marks the kudos retracted (a field of
-- kudos:{org}:retracted, which the kudos reads check: from now on it is left
-- out for everyone but admins and takes no new boosts) and records the
-- retraction as REVERSING, or finds the one already under way.
-- KEYS[1] = kudos:{org}:retracted  KEYS[2] = social:retraction:<kudos>
-- KEYS[3] = social:retractreq:<request_id>
-- ARGV: kudos_id, request_id, admin, reason, now_ms, marker (a KudosRetracted pb),
--       request ttl_s
-- Returns 'REVERSING' (go on with the ledger) or 'DONE' (a retry of a finished one).
local retracted, retraction, request = KEYS[1], KEYS[2], KEYS[3]
local kudos_id, request_id, admin, reason, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local marker, ttl_s = ARGV[6], tonumber(ARGV[7])
local asked_for = redis.call('GET', request)
if asked_for and asked_for ~= kudos_id then
  return redis.error_reply("ALREADY_EXISTS request_id: '" .. request_id ..
    "' was used to retract kudos '" .. asked_for .. "'; use a new request_id")
end
local state = redis.call('HGET', retraction, 'state')
if state == 'DONE' or (not state and redis.call('HEXISTS', retracted, kudos_id) == 1) then
  if asked_for then return 'DONE' end
  local by = redis.call('HGET', retraction, 'admin') or 'an admin'
  return redis.error_reply("FAILED_PRECONDITION kudos '" .. kudos_id ..
    "' was already retracted by " .. by)
end
if state == 'REVERSING' then
  -- Interrupted earlier (a crash, the ledger down): this call finishes it.
  redis.call('SET', request, kudos_id, 'EX', ttl_s)
  return 'REVERSING'
end
redis.call('HSET', retracted, kudos_id, marker)
redis.call('HSET', retraction, 'state', 'REVERSING', 'request_id', request_id, 'admin', admin,
  'reason', reason, 'time_ms', now_ms)
redis.call('SET', request, kudos_id, 'EX', ttl_s)
return 'REVERSING'
