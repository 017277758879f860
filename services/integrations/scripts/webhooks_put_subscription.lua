-- Creates or updates a subscription and keeps the streams' groups in step.
-- Declared: every subscription (the groups depend on all their types), the
-- subscription's queue head.
-- ARGS: op ('create'|'update'), subscription id, now (ms), max subscriptions,
--       then field/value pairs (url, types, format, description, secret, paused).
local op, sub, now, max_subs = ARGS[1], ARGS[2], ARGS[3], tonumber(ARGS[4])
want_sub(sub)
want_every_sub()
want_head(sub)
local need = need_keys()
if need then return need end
local key = SUB[sub]
if op == 'create' then
  if redis.call('SISMEMBER', SUBS, sub) == 1 then
    return redis.error_reply('ALREADY_EXISTS subscription ' .. sub)
  end
  local count = redis.call('SCARD', SUBS)
  if count >= max_subs then
    return redis.error_reply('RESOURCE_EXHAUSTED the org has ' .. count ..
        ' webhook subscriptions, at most ' .. max_subs .. '; delete one first')
  end
  redis.call('SADD', SUBS, sub)
  redis.call('HSET', key, 'created_ms', now, 'failures', 0, 'paused', '0', 'paused_reason', '')
elseif redis.call('EXISTS', key) == 0 then
  return redis.error_reply('NOT_FOUND subscription_id: no subscription ' .. sub)
end
for i = 5, #ARGS, 2 do
  local field, value = ARGS[i], ARGS[i + 1]
  if field == 'paused' then
    local was = redis.call('HGET', key, 'paused')
    if value == '0' and was ~= '0' then
      -- Resumed: its failures start over and its head is due again.
      redis.call('HSET', key, 'paused', '0', 'paused_reason', '', 'failures', 0)
    elseif value == '1' and was ~= '1' then
      redis.call('HSET', key, 'paused', '1', 'paused_reason', 'paused by an admin')
    end
  else
    redis.call('HSET', key, field, value)
  end
end
schedule(sub)
local err = reconcile_groups()
if err then return err end
return redis.call('HGETALL', key)
