-- Creates or replaces a person or a team, keeps the indexes in step, and in
-- the same step appends the change to the org's event stream and the audit
-- stream, so consumers never miss a directory change.
-- Every key it touches is in KEYS (KudosStore::DirectoryEntryKeys); a key
-- that does not apply is KEYS[1] again, never touched:
-- KEYS[1] = the entry (person:<id> or team:<id>)  KEYS[2] = its index (people or teams)
-- KEYS[3] = the event stream  KEYS[4] = "audit:{org}"
-- KEYS[5] = the org registry of the org's slot (common/redis/org_registry.h)
-- persons: KEYS[6] = team:<team_id>, KEYS[7] = team_members:<team_id> (team_id ~= '')
--          KEYS[8] = person:<manager_id> (manager_id ~= '')
--          KEYS[9] = team_members:<expected_old_team> (expected_old_team ~= '')
-- KEYS[10] = direct_reports (HASH manager -> number of ACTIVE people whose
--            manager they are), KEYS[11] = counted_manager (HASH person ->
--            the manager they are counted under), KEYS[12] = profile_sync
--            (HASH person -> version: ledger allowance profiles to mirror),
--            KEYS[13] = profile_sync:seq (the versions' counter)
-- KEYS[14] = directory_version (incremented: replicas' cached directories
--            are stale, services/kudos/directory_cache.h)
-- ARGV: kind ("person"|"team"), mode ("create"|"update"), id, pb, team_id,
--       manager_id, event, org, actor, time, expected_old_team (the team the
--       caller expects the stored person to be in: '' for none),
--       active ('1'|'0')
-- Returns 'OK', or {'NEED', old_team} (nothing written) when the stored
-- person's team is not the expected one: call again with that team's key.
local key, index, events, audit, registry = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local kind, mode, id, pb, team, manager, event, org, actor, time =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local expected_old_team = ARGV[11]
local exists = redis.call('EXISTS', key) == 1
if mode == 'create' and exists then
  return redis.error_reply('ALREADY_EXISTS ' .. kind .. '.' .. kind .. "_id: '" .. id .. "' already exists")
end
if mode == 'update' and not exists then
  return redis.error_reply('NOT_FOUND ' .. kind .. '.' .. kind .. "_id: '" .. id .. "' does not exist")
end
if kind == 'person' then
  if team ~= '' and redis.call('EXISTS', KEYS[6]) == 0 then
    return redis.error_reply("NOT_FOUND person.team_id: team '" .. team .. "' does not exist")
  end
  if manager ~= '' and redis.call('EXISTS', KEYS[8]) == 0 then
    return redis.error_reply("NOT_FOUND person.manager_id: person '" .. manager .. "' does not exist")
  end
  local old_team = redis.call('HGET', key, 'team') or ''
  if old_team ~= expected_old_team then return {'NEED', old_team} end
  if old_team ~= '' then redis.call('ZREM', KEYS[9], id) end
  if team ~= '' then redis.call('ZADD', KEYS[7], 0, id) end
  -- Direct reports counted here (O(1), no scan); the person and both
  -- managers are queued for the ledger mirror (at most once each: a HASH).
  local function queue(person)
    redis.call('HSET', KEYS[12], person, redis.call('INCR', KEYS[13]))
  end
  local counted = ''
  if ARGV[12] == '1' then counted = manager end
  local old_counted = redis.call('HGET', KEYS[11], id) or ''
  if old_counted ~= counted then
    if old_counted ~= '' then
      if redis.call('HINCRBY', KEYS[10], old_counted, -1) <= 0 then
        redis.call('HDEL', KEYS[10], old_counted)
      end
      queue(old_counted)
    end
    if counted ~= '' then
      redis.call('HINCRBY', KEYS[10], counted, 1)
      redis.call('HSET', KEYS[11], id, counted)
      queue(counted)
    else
      redis.call('HDEL', KEYS[11], id)
    end
  end
  queue(id)
end
redis.call('ZADD', index, 0, id)
redis.call('HSET', key, 'pb', pb, 'team', team)
redis.call('XADD', events, '*', 'event', event)
redis.call('XADD', audit, '*', 'actor', actor, 'action', mode .. '_' .. kind, 'target', id,
  'reason', '', 'time', time)
redis.call('SADD', registry, org)
redis.call('INCR', KEYS[14])
return 'OK'
