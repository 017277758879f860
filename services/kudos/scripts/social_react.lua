-- Adds, removes or reads the caller's reaction to a kudos: one reaction per
-- person per emoji; counts per emoji.
-- KEYS[1] = social:reactions:<kudos>  (HASH emoji code -> count)
-- KEYS[2] = social:reactors:<kudos>   (SET '<code>|<person>')
-- ARGV: op ('add'|'remove'|'get'), code, person, max reactions per kudos,
--       expire_at_ms (the kudos' live window), then every allowed code
-- Returns {{code, count, ...}, {codes the person reacted with}}.
local counts, reactors = KEYS[1], KEYS[2]
local op, code, person, max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local member = code .. '|' .. person
if op == 'add' and redis.call('SISMEMBER', reactors, member) == 0 then
  local total = redis.call('SCARD', reactors)
  if total >= max then
    return redis.error_reply('RESOURCE_EXHAUSTED kudos has ' .. total ..
      ' reactions, the most one kudos keeps')
  end
  redis.call('SADD', reactors, member)
  redis.call('HINCRBY', counts, code, 1)
  -- Reactions live as long as their kudos does (docs/retention-kudos.md).
  redis.call('PEXPIREAT', counts, ARGV[5])
  redis.call('PEXPIREAT', reactors, ARGV[5])
elseif op == 'remove' and redis.call('SREM', reactors, member) == 1 then
  if redis.call('HINCRBY', counts, code, -1) <= 0 then redis.call('HDEL', counts, code) end
end
local mine = {}
for i = 6, #ARGV do
  if redis.call('SISMEMBER', reactors, ARGV[i] .. '|' .. person) == 1 then
    mine[#mine + 1] = ARGV[i]
  end
end
return {redis.call('HGETALL', counts), mine}
