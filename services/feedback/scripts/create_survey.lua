-- Stores a new survey within the bounds.
-- KEYS[1] = "feedback:{org}:"
-- ARGV: survey id, team id, serialized Survey, now (ms), max per team, max per org
local p = KEYS[1]
local id, team = ARGV[1], ARGV[2]
local team_key = p .. 'team_surveys:' .. team
if redis.call('ZCARD', team_key) >= tonumber(ARGV[5]) then
  return redis.error_reply('FAILED_PRECONDITION survey.team_id: the team has ' .. ARGV[5] ..
    ' surveys already (the most a team may have)')
end
if redis.call('ZCARD', p .. 'surveys') >= tonumber(ARGV[6]) then
  return redis.error_reply('FAILED_PRECONDITION the org has ' .. ARGV[6] ..
    ' surveys already (the most an org may have)')
end
redis.call('SET', p .. 'survey:' .. id, ARGV[3])
redis.call('ZADD', p .. 'surveys', ARGV[4], id)
redis.call('ZADD', team_key, ARGV[4], id)
return 'OK'
