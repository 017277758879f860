-- Stores a new survey within the bounds.
-- KEYS[1] = survey:<id>  KEYS[2] = surveys  KEYS[3] = team_surveys:<team>
-- (every key it touches; FeedbackStore::CreateSurvey)
-- ARGV: survey id, team id, serialized Survey, now (ms), max per team, max per org
local survey_key, surveys, team_key = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call('ZCARD', team_key) >= tonumber(ARGV[5]) then
  return redis.error_reply('FAILED_PRECONDITION survey.team_id: the team has ' .. ARGV[5] ..
    ' surveys already (the most a team may have)')
end
if redis.call('ZCARD', surveys) >= tonumber(ARGV[6]) then
  return redis.error_reply('FAILED_PRECONDITION the org has ' .. ARGV[6] ..
    ' surveys already (the most an org may have)')
end
redis.call('SET', survey_key, ARGV[3])
redis.call('ZADD', surveys, ARGV[4], id)
redis.call('ZADD', team_key, ARGV[4], id)
return 'OK'
