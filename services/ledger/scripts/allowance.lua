-- Allowance rules, profiles and boosts (issue 18 part 2). KEYS: the one
-- alw:* key of the op, alw:ver and, for admins' changes, "audit:{org}"
-- (written here, only when something changed, so the change and its entry go
-- together). Every change moves alw:ver, the version post.lua checks the
-- inputs of its limits against (allowance_cache.h).
--   set_rule    ARGV: op, rule_id, body, max rules, audit fields...
--   delete_rule ARGV: op, rule_id, audit fields...
--   set_profile ARGV: op, person, body, max profiles, audit fields... (KEYS
--               also alw:rules: a profile counts only through rules, so in
--               an org without any it does not move alw:ver and answers
--               {'OK', 'VERSION_KEPT'}; adding a rule moves it)
--   grant       ARGV: op, person, boost_id, body, fingerprint, end_ms, now_ms,
--               max boosts per person, audit fields...
--   cancel      ARGV: op, person, boost_id, body (cancelled), audit fields...
-- A boost is two fields of alw:boosts:<person>: <id> = AllowanceBoost and
-- <id>:meta = fingerprint|end_ms; a grant first drops the boosts that ended.
-- Returns {code, ...}: OK, SAME (nothing to change), FULL (count),
-- EXISTS / CONFLICT (stored body), NOT_FOUND.
local op = ARGV[1]

-- Something changed: the version moves (unless `keep_version`) and the audit
-- entry (if any) is written.
local function changed(from, keep_version)
  if not keep_version then redis.call('INCR', key('alw:ver')) end
  if AUDIT and #ARGV >= from then redis.call('XADD', AUDIT, '*', unpack(ARGV, from, #ARGV)) end
end

-- HSET of a bounded hash: SAME when unchanged, FULL when a new field would
-- pass the bound.
local function put(hash, field, body, max, audit_from, keep_version)
  local old = redis.call('HGET', hash, field)
  if old == body then return {'SAME'} end
  local count = redis.call('HLEN', hash)
  if not old and count >= max then return {'FULL', count} end
  redis.call('HSET', hash, field, body)
  changed(audit_from, keep_version)
  if keep_version then return {'OK', 'VERSION_KEPT'} end
  return {'OK'}
end

if op == 'set_rule' then
  return put(key('alw:rules'), ARGV[2], ARGV[3], tonumber(ARGV[4]), 5)
elseif op == 'delete_rule' then
  if redis.call('HDEL', key('alw:rules'), ARGV[2]) == 0 then return {'SAME'} end
  changed(3)
  return {'OK'}
elseif op == 'set_profile' then
  -- A directory import syncs every person's profile: in an org without
  -- rules, moving the version each time would make every replica's next
  -- posts read their inputs again and run twice (bench/README.md).
  local no_rules = redis.call('EXISTS', key('alw:rules')) == 0
  return put(key('alw:profiles'), ARGV[2], ARGV[3], tonumber(ARGV[4]), 5, no_rules)
elseif op == 'grant' then
  local h = key('alw:boosts:' .. ARGV[2])
  local id = ARGV[3]
  local meta = redis.call('HGET', h, id .. ':meta')
  if meta then
    local code = string.match(meta, '^([^|]*)|') == ARGV[5] and 'EXISTS' or 'CONFLICT'
    return {code, redis.call('HGET', h, id) or ''}
  end
  local now, count = tonumber(ARGV[7]), 0
  local all = redis.call('HGETALL', h)
  for i = 1, #all, 2 do
    local boost = string.match(all[i], '^(.*):meta$')
    if boost then
      local end_ms = tonumber(string.match(all[i + 1], '|(%d+)$') or '0')
      if end_ms <= now then
        redis.call('HDEL', h, boost, all[i])
      else
        count = count + 1
      end
    end
  end
  if count >= tonumber(ARGV[8]) then return {'FULL', count} end
  redis.call('HSET', h, id, ARGV[4], id .. ':meta', ARGV[5] .. '|' .. ARGV[6])
  changed(9)
  return {'OK'}
elseif op == 'cancel' then
  local h = key('alw:boosts:' .. ARGV[2])
  if redis.call('HEXISTS', h, ARGV[3]) == 0 then return {'NOT_FOUND'} end
  redis.call('HSET', h, ARGV[3], ARGV[4])
  changed(5)
  return {'OK'}
end
return redis.error_reply('INVALID_ARGUMENT unknown allowance op ' .. tostring(op))
