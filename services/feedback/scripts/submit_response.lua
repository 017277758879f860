-- Accepts the one answer to an invitation, or replays it.
-- Every key it touches is in KEYS (FeedbackStore::Submit):
-- KEYS[1] = inv:<id>  KEYS[2] = invreq:<id>  KEYS[3] = responses:<team>
-- KEYS[4] = inbox:<caller>  KEYS[5..] = the respondents sets
-- ARGV: invitation id, caller, request id, canonical answers, response nonce,
--       now (ms), retention (s), respondent tag, team (the invitation's, as
--       the caller read it: KEYS[3] and the sets are its keys)
-- The response is stored under the team by its period's start with a random
-- prefix: no person, no invitation id, no time of answering. The invitation
-- keeps only `answered` and, for the retry window, a salted hash.
local inv, fp_key, responses, inbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, caller, request_id, answers = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nonce, now, retention = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local h = redis.call('HMGET', inv, 'invitee', 'team', 'survey', 'period_start', 'closes', 'salt',
  'answered')
if not h[1] or h[1] ~= caller then
  return redis.error_reply("NOT_FOUND invitation_id: '" .. id .. "' is not an invitation of yours")
end
local fp = redis.sha1hex(h[6] .. '\0' .. request_id .. '\0' .. answers)
if h[7] == '1' then
  if redis.call('GET', fp_key) == fp then return 'REPLAY' end
  return redis.error_reply("ALREADY_EXISTS invitation_id: '" .. id ..
    "' was answered already (one answer per invitation)")
end
-- An invitation's team never changes; one read under another id's team
-- would store the answer under the wrong keys.
if h[2] ~= ARGV[9] then
  return redis.error_reply("ABORTED invitation_id: '" .. id ..
    "' changed while it was being answered; retry")
end
local closes = tonumber(h[5])
if now >= closes then
  return redis.error_reply("FAILED_PRECONDITION invitation_id: '" .. id ..
    "' closed at the end of its survey period")
end
redis.call('HSET', inv, 'answered', '1')
redis.call('SET', fp_key, fp, 'PX', closes - now + 86400000)
redis.call('ZADD', responses, h[4], nonce .. '|' .. h[3] .. '|' .. answers)
redis.call('ZREMRANGEBYSCORE', responses, '-inf', '(' .. (now - retention * 1000))
redis.call('EXPIRE', responses, retention)
redis.call('ZREM', inbox, id)
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[8])
  redis.call('EXPIRE', KEYS[i], retention)
end
return 'OK'
