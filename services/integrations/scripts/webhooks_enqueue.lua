-- Turns a batch of one stream's entries into deliveries (one per matching
-- subscription) and acknowledges the entries in the same step: an entry is
-- either acknowledged with its deliveries recorded, or neither (at least
-- once across a crash), and a re-read entry creates nothing twice (the
-- delivery id is subscription + event id).
-- Declared: every subscription, the delivery of each (matching subscription,
-- event), and the log's tail a refused delivery trims.
-- ARGS: the stream's index in KEYS (4..7), max pending per subscription, log
--       size, now (ms), number of entries, number of events, entry ids...,
--       then per event: event id, type, created (ms), JSON body, Slack body.
local stream = KEYS[tonumber(ARGS[1])]
local max_pending, log_size, now = tonumber(ARGS[2]), tonumber(ARGS[3]), ARGS[4]
local n_entries, n_events = tonumber(ARGS[5]), tonumber(ARGS[6])
local base = 7 + n_entries
local subs = redis.call('SMEMBERS', SUBS)
for _, sub in ipairs(subs) do want_sub(sub) end
local need = need_keys()
if need then return need end
-- Planning: which deliveries each subscription gets, and how many of them
-- its pending cap refuses (each refused one goes to the log, trimming it).
for _, sub in ipairs(subs) do
  local types = redis.call('HGET', SUB[sub], 'types') or ''
  local pending, refused, planned = redis.call('LLEN', Q[sub]), 0, {}
  for e = 0, n_events - 1 do
    local i = base + e * 5
    local did = sub .. '.' .. ARGS[i]
    if string.find(types, ',' .. ARGS[i + 1] .. ',', 1, true) then
      want_delivery(did)
      if D[did] and not planned[did] and redis.call('EXISTS', D[did]) == 0 then
        planned[did] = true
        if pending >= max_pending then refused = refused + 1 else pending = pending + 1 end
      end
    end
  end
  if refused > 0 then want_trimmed(sub, refused, log_size) end
end
need = need_keys()
if need then return need end
local created, refused = 0, 0
for e = 0, n_events - 1 do
  local i = base + e * 5
  local event, etype, created_ms = ARGS[i], ARGS[i + 1], ARGS[i + 2]
  for _, sub in ipairs(subs) do
    local skey = SUB[sub]
    local types = redis.call('HGET', skey, 'types') or ''
    local did = sub .. '.' .. event
    if string.find(types, ',' .. etype .. ',', 1, true) and redis.call('EXISTS', D[did]) == 0 then
      local d = D[did]
      local body = ARGS[i + 3]
      if redis.call('HGET', skey, 'format') == 'slack' then body = ARGS[i + 4] end
      redis.call('HSET', d, 'sub', sub, 'event', event, 'type', etype, 'body', body,
          'attempts', 0, 'http', 0, 'error', '', 'created_ms', created_ms, 'queued_ms', now,
          'last_ms', 0, 'next_ms', now, 'lease', '', 'lease_until', 0)
      local q = Q[sub]
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
  redis.call('XACK', stream, GROUP, unpack(ARGS, 7, 6 + n_entries))
end
return {created, refused}
