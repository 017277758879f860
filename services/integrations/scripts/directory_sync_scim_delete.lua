-- Deletes one SCIM resource's record (a user or a group) and its index
-- entries. NOT_FOUND when it does not exist.
-- KEYS[1] = "integrations:{org}:scim:"   ARGV: kind ("user"|"group"), id
local p = KEYS[1]
local kind, id = ARGV[1], ARGV[2]
local key = p .. kind .. ':' .. id
if redis.call('EXISTS', key) == 0 then
  return redis.error_reply('NOT_FOUND ' .. kind .. " '" .. id .. "' does not exist")
end
local name_key = redis.call('HGET', key, 'name_key')
if name_key and redis.call('HGET', p .. kind .. '_names', name_key) == id then
  redis.call('HDEL', p .. kind .. '_names', name_key)
end
local external_id = redis.call('HGET', key, 'external_id')
if external_id and external_id ~= '' and
    redis.call('HGET', p .. kind .. '_external_ids', external_id) == id then
  redis.call('HDEL', p .. kind .. '_external_ids', external_id)
end
redis.call('ZREM', p .. kind .. 's', id)
redis.call('DEL', key)
return 'OK'
