-- Applies one stream entry to the projections, exactly once.
-- KEYS[1]: the org's applied set (dedupe ids of entries and logical events).
-- KEYS[2]: the org's rebuild lock (value = the rebuilding owner's token).
-- KEYS[3..]: every key the operations touch (all in the org's slot).
-- ARGV[1]: the entry's dedupe id ("k:<stream id>" / "l:<stream id>").
-- ARGV[2]: the rebuild token of the caller ("" for live consumers).
-- ARGV[3..]: operations (see leaderboard_rules.h, ApplyPlan).
-- Returns {status, groups_applied}: status 1 = applied, 0 = entry seen before.
local applied = KEYS[1]
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[2] then
  -- Not applied, not acknowledged: redelivered after the rebuild.
  return redis.error_reply('ABORTED projections of this org are being rebuilt')
end
if redis.call('SADD', applied, ARGV[1]) == 0 then
  return {0, 0}
end

local skip = false
local groups = 0
local i = 3
local n = #ARGV
local function key(at) return KEYS[tonumber(ARGV[at])] end

while i <= n do
  local op = ARGV[i]
  if op == 'G' then
    if ARGV[i + 1] == '' then
      skip = false
    else
      skip = redis.call('SADD', applied, ARGV[i + 1]) == 0
    end
    if not skip then groups = groups + 1 end
    i = i + 2
  elseif op == 'Z' then
    if not skip then
      local k = key(i + 1)
      local score = redis.call('ZINCRBY', k, ARGV[i + 3], ARGV[i + 2])
      -- A board's expiry depends only on its period, so it is set once, when
      -- the key is created; a new key means a new member, whose score is the
      -- increment. Skipping the call otherwise halves the script's commands.
      if ARGV[i + 4] ~= '0' and tonumber(score) == tonumber(ARGV[i + 3]) then
        redis.call('EXPIREAT', k, ARGV[i + 4], 'NX')
      end
    end
    i = i + 5
  elseif op == 'S' then
    if not skip then redis.call('SADD', key(i + 1), ARGV[i + 2]) end
    i = i + 3
  elseif op == 'H' then
    if not skip then redis.call('HSET', key(i + 1), ARGV[i + 2], ARGV[i + 3]) end
    i = i + 4
  elseif op == 'N' then
    if not skip then redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3]) end
    i = i + 4
  elseif op == 'P' then
    if not skip then redis.call('SET', key(i + 1), ARGV[i + 2]) end
    i = i + 3
  elseif op == 'D' then
    if not skip then redis.call('DEL', key(i + 1)) end
    i = i + 2
  elseif op == 'T' then
    if not skip then
      local score = tonumber(redis.call('ZSCORE', key(i + 4), ARGV[i + 5]) or '0')
      if score >= tonumber(ARGV[i + 6]) then
        redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3])
      end
    end
    i = i + 7
  elseif op == 'V' then
    local count = tonumber(ARGV[i + 5])
    if not skip then
      local set = key(i + 4)
      local all = true
      for j = 1, count do
        if redis.call('SISMEMBER', set, ARGV[i + 5 + j]) == 0 then
          all = false
          break
        end
      end
      if all then redis.call('HSETNX', key(i + 1), ARGV[i + 2], ARGV[i + 3]) end
    end
    i = i + 6 + count
  else
    return redis.error_reply('INTERNAL apply_event: unknown operation ' .. tostring(op))
  end
end
return {1, groups}
