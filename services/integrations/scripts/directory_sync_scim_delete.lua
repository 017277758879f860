-- Deletes one SCIM resource's record (a user or a group) and its index
-- entries. NOT_FOUND when it does not exist.
-- KEYS[1] the record (integrations:{org}:scim:<kind>:<id>), KEYS[2] the name
-- index (<kind>_names), KEYS[3] the externalId index (<kind>_external_ids),
-- KEYS[4] the ids in order (<kind>s). ARGV: kind ("user"|"group"), id
local key, names, externals, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local kind, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', key) == 0 then
  return redis.error_reply('NOT_FOUND ' .. kind .. " '" .. id .. "' does not exist")
end
local name_key = redis.call('HGET', key, 'name_key')
if name_key and redis.call('HGET', names, name_key) == id then
  redis.call('HDEL', names, name_key)
end
local external_id = redis.call('HGET', key, 'external_id')
if external_id and external_id ~= '' and redis.call('HGET', externals, external_id) == id then
  redis.call('HDEL', externals, external_id)
end
redis.call('ZREM', index, id)
redis.call('DEL', key)
return 'OK'
