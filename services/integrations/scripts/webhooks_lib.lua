-- Shared by every webhooks script (prepended to each). Keys of one org only:
-- KEYS[1] = "integrations:{org}:wh:" (P); the org's event streams come as
-- KEYS[2..5] where a script touches them (same {org} slot).
--   P..'subs'            SET of subscription ids
--   P..'sub:'..id        HASH url, types (",a,b,"), format, paused, paused_reason,
--                        failures, created_ms, description, secret
--   P..'streams'         SET of the streams that carry the group `webhooks`
--   P..'q:'..id          LIST of pending delivery ids, oldest first (the head goes out next)
--   P..'done:'..id       LIST of finished delivery ids, newest first (trimmed to the log size)
--   P..'d:'..delivery    HASH sub, event, type, body, state, attempts, http, error,
--                        created_ms, last_ms, next_ms, lease, lease_until
--   P..'due'             ZSET subscription id -> ms when its head may be tried
--                        (absent: nothing pending, or paused)
local P = KEYS[1]
local GROUP = 'webhooks'

-- Event type -> the index in KEYS of the stream that carries it.
local STREAM_OF = {
  ['kudos.sent'] = 2, ['kudos.boosted'] = 2,
  ['redemption.fulfilled'] = 3,
  ['survey.invitation'] = 4,
  ['badge.earned'] = 5, ['streak.extended'] = 5, ['period.closed'] = 5,
}

-- A finished delivery goes to the head of the log; the log keeps `size`.
local function push_done(sub, did, size)
  local log = P .. 'done:' .. sub
  redis.call('LPUSH', log, did)
  while redis.call('LLEN', log) > size do
    local old = redis.call('RPOP', log)
    redis.call('DEL', P .. 'd:' .. old)
  end
end

-- The subscription's place in `due`: its head's next attempt (or lease end).
local function schedule(sub)
  if redis.call('HGET', P .. 'sub:' .. sub, 'paused') == '1' then
    redis.call('ZREM', P .. 'due', sub)
    return
  end
  local head = redis.call('LINDEX', P .. 'q:' .. sub, 0)
  if not head then
    redis.call('ZREM', P .. 'due', sub)
    return
  end
  local d = P .. 'd:' .. head
  local at = tonumber(redis.call('HGET', d, 'next_ms') or '0')
  local lease_until = tonumber(redis.call('HGET', d, 'lease_until') or '0')
  if lease_until > at then at = lease_until end
  redis.call('ZADD', P .. 'due', at, sub)
end

-- Creates or destroys the group `webhooks` on each stream so that exactly
-- the streams some subscription needs carry it: a group holds the stream's
-- trim (docs/retention.md), so an org without subscriptions keeps none.
local function reconcile_groups()
  local needed = {}
  for _, sub in ipairs(redis.call('SMEMBERS', P .. 'subs')) do
    local types = redis.call('HGET', P .. 'sub:' .. sub, 'types') or ''
    for t in string.gmatch(types, '[^,]+') do
      local k = STREAM_OF[t]
      if k then needed[k] = true end
    end
  end
  for k = 2, 5 do
    local stream = KEYS[k]
    local has = redis.call('SISMEMBER', P .. 'streams', stream) == 1
    if needed[k] and not has then
      -- New events only: a subscription starts with the events after it.
      local ok = redis.pcall('XGROUP', 'CREATE', stream, GROUP, '$', 'MKSTREAM')
      if type(ok) == 'table' and ok.err and not string.find(ok.err, 'BUSYGROUP') then
        return redis.error_reply(ok.err)
      end
      redis.call('SADD', P .. 'streams', stream)
    elseif has and not needed[k] then
      redis.pcall('XGROUP', 'DESTROY', stream, GROUP)
      redis.call('SREM', P .. 'streams', stream)
    end
  end
  return nil
end
