-- Creates or replaces a person or a team, keeps the indexes in step, and in
-- the same step appends the change to the org's event stream and the audit
-- stream, so consumers never miss a directory change.
-- KEYS[1] = "kudos:{org}:"  KEYS[2] = "audit:{org}"
-- KEYS[3] = the org registry of the org's slot (common/redis/org_registry.h)
-- ARGV: kind ("person"|"team"), mode ("create"|"update"), id, pb, team_id,
--       manager_id, event, org, actor, time
local p, audit, registry = KEYS[1], KEYS[2], KEYS[3]
local kind, mode, id, pb, team, manager, event, org, actor, time =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local key = p .. kind .. ':' .. id
local exists = redis.call('EXISTS', key) == 1
if mode == 'create' and exists then
  return redis.error_reply('ALREADY_EXISTS ' .. kind .. '.' .. kind .. "_id: '" .. id .. "' already exists")
end
if mode == 'update' and not exists then
  return redis.error_reply('NOT_FOUND ' .. kind .. '.' .. kind .. "_id: '" .. id .. "' does not exist")
end
if kind == 'person' then
  if team ~= '' and redis.call('EXISTS', p .. 'team:' .. team) == 0 then
    return redis.error_reply("NOT_FOUND person.team_id: team '" .. team .. "' does not exist")
  end
  if manager ~= '' and redis.call('EXISTS', p .. 'person:' .. manager) == 0 then
    return redis.error_reply("NOT_FOUND person.manager_id: person '" .. manager .. "' does not exist")
  end
  local old_team = redis.call('HGET', key, 'team')
  if old_team and old_team ~= '' then redis.call('ZREM', p .. 'team_members:' .. old_team, id) end
  if team ~= '' then redis.call('ZADD', p .. 'team_members:' .. team, 0, id) end
  redis.call('ZADD', p .. 'people', 0, id)
else
  redis.call('ZADD', p .. 'teams', 0, id)
end
redis.call('HSET', key, 'pb', pb, 'team', team)
redis.call('XADD', p .. 'events', '*', 'event', event)
redis.call('XADD', audit, '*', 'actor', actor, 'action', mode .. '_' .. kind, 'target', id,
  'reason', '', 'time', time)
redis.call('SADD', registry, org)
return 'OK'
