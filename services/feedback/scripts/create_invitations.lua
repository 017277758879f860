-- Creates one survey period's invitations, exactly once across replicas: the
-- marker P swept:<survey>:<period> is checked and set in this same script
-- (set only when some were created).
-- Every key it touches is in KEYS (FeedbackStore::CreateInvitations):
-- KEYS[1] = swept:<survey>:<period> (the marker)  KEYS[2] = weekly:<week>
-- KEYS[3] = "feedback:{org}:invitations" (stream)
-- then per candidate i: KEYS[2 + 2i] = inv:<id_i>, KEYS[3 + 2i] = inbox:<person_i>
-- ARGV: survey, team, period, period start (ms), closes (ms), max invitations,
--       weekly cap, retention (s), template pb, now (ms), stream cap, n, then
--       n times: person, invitation id, salt (the caller draws ids and salts)
-- Returns the number created, or -1 when the period was swept before.
local marker, weekly, stream = KEYS[1], KEYS[2], KEYS[3]
local survey, team, period = ARGV[1], ARGV[2], ARGV[3]
local period_start, closes = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_n, cap = tonumber(ARGV[6]), tonumber(ARGV[7])
local retention, template = tonumber(ARGV[8]), ARGV[9]
local now, stream_cap, n = tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12])
if redis.call('EXISTS', marker) == 1 then return -1 end
-- A day past the close, so a late sweep of the same period still sees it.
local marker_ttl = math.max(1, math.floor((closes - now) / 1000) + 86400)
local created = 0
local seen = {}
for i = 1, n do
  if created >= max_n then break end
  local person, id, salt = ARGV[10 + 3 * i], ARGV[11 + 3 * i], ARGV[12 + 3 * i]
  if not seen[person] then
    seen[person] = true
    local count = tonumber(redis.call('HGET', weekly, person) or '0')
    if count < cap then
      -- The template plus field 1 (invitation_id) and field 8 (person_id):
      -- appending a field to a serialized message sets it (ids < 128 bytes).
      local pb = template .. '\10' .. string.char(#id) .. id .. '\66' .. string.char(#person) .. person
      local inv = KEYS[2 + 2 * i]
      redis.call('HSET', inv, 'pb', pb, 'invitee', person, 'team', team, 'survey', survey,
        'period_start', period_start, 'closes', closes, 'salt', salt, 'answered', '0')
      redis.call('EXPIRE', inv, retention)
      local inbox = KEYS[3 + 2 * i]
      redis.call('ZREMRANGEBYSCORE', inbox, '-inf', '(' .. now)
      redis.call('ZADD', inbox, closes, id)
      if redis.call('TTL', inbox) < marker_ttl then redis.call('EXPIRE', inbox, marker_ttl) end
      redis.call('HINCRBY', weekly, person, 1)
      redis.call('XADD', stream, 'MAXLEN', '~', stream_cap, '*', 'invitation', pb)
      created = created + 1
    end
  end
end
if redis.call('EXISTS', weekly) == 1 then redis.call('EXPIRE', weekly, 8 * 86400) end
-- A period with nobody to invite yet stays open to a later sweep (people
-- served since); once it has invitations it is done.
if created > 0 then redis.call('SET', marker, created, 'EX', marker_ttl) end
return created
