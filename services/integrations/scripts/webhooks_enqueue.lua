-- Turns a batch of one stream's entries into deliveries (one per matching
-- subscription) and acknowledges the entries in the same step: an entry is
-- either acknowledged with its deliveries recorded, or neither (at least
-- once across a crash), and a re-read entry creates nothing twice (the
-- delivery id is subscription + event id).
-- KEYS[1] = P, KEYS[2] = the stream.
-- ARGV: max pending per subscription, log size, now (ms), number of entries,
--       number of events, entry ids..., then per event: event id, type,
--       created (ms), JSON body, Slack body.
local max_pending, log_size, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local n_entries, n_events = tonumber(ARGV[4]), tonumber(ARGV[5])
local subs = redis.call('SMEMBERS', P .. 'subs')
local created, refused = 0, 0
local base = 6 + n_entries
for e = 0, n_events - 1 do
  local i = base + e * 5
  local event, etype, created_ms = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  for _, sub in ipairs(subs) do
    local skey = P .. 'sub:' .. sub
    local types = redis.call('HGET', skey, 'types') or ''
    local did = sub .. '.' .. event
    local d = P .. 'd:' .. did
    if string.find(types, ',' .. etype .. ',', 1, true) and redis.call('EXISTS', d) == 0 then
      local body = ARGV[i + 3]
      if redis.call('HGET', skey, 'format') == 'slack' then body = ARGV[i + 4] end
      redis.call('HSET', d, 'sub', sub, 'event', event, 'type', etype, 'body', body,
          'attempts', 0, 'http', 0, 'error', '', 'created_ms', created_ms, 'queued_ms', now,
          'last_ms', 0, 'next_ms', now, 'lease', '', 'lease_until', 0)
      local q = P .. 'q:' .. sub
      local pending = redis.call('LLEN', q)
      if pending >= max_pending then
        -- Nothing is dropped silently: it is logged as dead, and Redeliver
        -- queues it once the receiver has caught up.
        redis.call('HSET', d, 'state', 'dead', 'error', 'not queued: the subscription has ' ..
            pending .. ' pending deliveries, at most ' .. max_pending)
        push_done(sub, did, log_size)
        refused = refused + 1
      else
        redis.call('HSET', d, 'state', 'pending')
        redis.call('RPUSH', q, did)
        if pending == 0 then schedule(sub) end
        created = created + 1
      end
    end
  end
end
if n_entries > 0 then
  redis.call('XACK', KEYS[2], GROUP, unpack(ARGV, 6, 5 + n_entries))
end
return {created, refused}
