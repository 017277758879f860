-- Deletes a subscription with its pending deliveries and its log (bounded:
-- at most the pending cap plus the log size), and drops groups no longer needed.
-- KEYS: P, kudos events, ledger outbox, feedback invitations, lb events. ARGV: id.
local sub = ARGV[1]
if redis.call('SREM', P .. 'subs', sub) == 0 then
  return redis.error_reply('NOT_FOUND subscription_id: no subscription ' .. sub)
end
for _, list in ipairs({P .. 'q:' .. sub, P .. 'done:' .. sub}) do
  for _, did in ipairs(redis.call('LRANGE', list, 0, -1)) do
    redis.call('DEL', P .. 'd:' .. did)
  end
  redis.call('DEL', list)
end
redis.call('DEL', P .. 'sub:' .. sub)
redis.call('ZREM', P .. 'due', sub)
local err = reconcile_groups()
if err then return err end
return 1
