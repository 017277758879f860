-- Accepts the one answer to an invitation, or replays it.
-- KEYS[1] = "feedback:{org}:"
-- ARGV: invitation id, caller, request id, canonical answers, response nonce,
--       now (ms), retention (s), respondent tag, respondents set keys...
-- (the sets carry {org} in their names: same slot)
-- The response is stored under the team by its period's start with a random
-- prefix: no person, no invitation id, no time of answering. The invitation
-- keeps only `answered` and, for the retry window, a salted hash.
local p = KEYS[1]
local id, caller, request_id, answers = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nonce, now, retention = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local inv = p .. 'inv:' .. id
local h = redis.call('HMGET', inv, 'invitee', 'team', 'survey', 'period_start', 'closes', 'salt',
  'answered')
if not h[1] or h[1] ~= caller then
  return redis.error_reply("NOT_FOUND invitation_id: '" .. id .. "' is not an invitation of yours")
end
local fp = redis.sha1hex(h[6] .. '\0' .. request_id .. '\0' .. answers)
local fp_key = p .. 'invreq:' .. id
if h[7] == '1' then
  if redis.call('GET', fp_key) == fp then return 'REPLAY' end
  return redis.error_reply("ALREADY_EXISTS invitation_id: '" .. id ..
    "' was answered already (one answer per invitation)")
end
local closes = tonumber(h[5])
if now >= closes then
  return redis.error_reply("FAILED_PRECONDITION invitation_id: '" .. id ..
    "' closed at the end of its survey period")
end
redis.call('HSET', inv, 'answered', '1')
redis.call('SET', fp_key, fp, 'PX', closes - now + 86400000)
local responses = p .. 'responses:' .. h[2]
redis.call('ZADD', responses, h[4], nonce .. '|' .. h[3] .. '|' .. answers)
redis.call('ZREMRANGEBYSCORE', responses, '-inf', '(' .. (now - retention * 1000))
redis.call('EXPIRE', responses, retention)
redis.call('ZREM', p .. 'inbox:' .. caller, id)
for i = 9, #ARGV do
  redis.call('SADD', ARGV[i], ARGV[8])
  redis.call('EXPIRE', ARGV[i], retention)
end
return 'OK'
