-- Creates or replaces one SCIM resource's record (a user or a group), keeping
-- its name index unique (userName / displayName, compared lower-cased) and
-- its externalId index in step; bounded per org.
-- KEYS as in directory_sync_scim_delete.lua: the record, the name index,
-- the externalId index, the ids in order.
-- ARGV: kind ("user"|"group"), id, res (JSON), name_key (lower-cased name),
--       external_id ("" = none), mode ("create"|"replace"), now (RFC 3339),
--       max_resources
local key, names, externals, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local kind, id, res, name_key, external_id, mode, now, max_resources =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local exists = redis.call('EXISTS', key) == 1
if mode == 'create' and exists then
  return redis.error_reply('ALREADY_EXISTS ' .. kind .. " id '" .. id .. "' already exists")
end
if mode == 'replace' and not exists then
  return redis.error_reply('NOT_FOUND ' .. kind .. " '" .. id .. "' does not exist")
end
local owner = redis.call('HGET', names, name_key)
if owner and owner ~= id then
  return redis.error_reply('ALREADY_EXISTS ' .. kind .. " name '" .. name_key .. "' is taken by '" .. owner .. "'")
end
if not exists and redis.call('ZCARD', index) >= max_resources then
  return redis.error_reply('RESOURCE_EXHAUSTED at most ' .. max_resources .. ' SCIM ' .. kind .. 's per org')
end
local old_name = redis.call('HGET', key, 'name_key')
if old_name and old_name ~= name_key and redis.call('HGET', names, old_name) == id then
  redis.call('HDEL', names, old_name)
end
local old_external = redis.call('HGET', key, 'external_id')
if old_external and old_external ~= '' and old_external ~= external_id and
    redis.call('HGET', externals, old_external) == id then
  redis.call('HDEL', externals, old_external)
end
if external_id ~= '' then redis.call('HSET', externals, external_id, id) end
redis.call('HSET', names, name_key, id)
redis.call('ZADD', index, 0, id)
if not exists then redis.call('HSET', key, 'created', now) end
redis.call('HSET', key, 'res', res, 'name_key', name_key, 'external_id', external_id,
  'modified', now)
return 'OK'
