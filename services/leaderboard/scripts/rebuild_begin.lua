-- Starts a rebuild of one org's projections, or refuses with nothing taken.
-- KEYS[1]: the org's rebuild lock. KEYS[2]: the org's rebuild budget.
-- ARGV[1]: the rebuild's token. ARGV[2]: lock ttl (ms).
-- ARGV[3]: minimum interval between rebuilds (ms; 0 = unlimited).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('ABORTED a rebuild of this org\'s projections is already running')
end
local interval = tonumber(ARGV[3])
if interval > 0 then
  local wait = redis.call('PTTL', KEYS[2])
  if wait > 0 then
    return redis.error_reply('RESOURCE_EXHAUSTED RebuildProjections runs at most once every ' ..
      math.floor(interval / 1000) .. ' s per org; retry after ' .. wait .. ' ms')
  end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', interval)
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
