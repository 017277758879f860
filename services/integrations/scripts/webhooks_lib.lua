-- Shared by every webhooks script (prepended to each). Every key a script
-- touches is in KEYS, named by the caller (webhooks_store.h: one function
-- per key name); nothing here builds a key name, so a slot migration routes,
-- ASKs or TRYAGAINs the whole script by its real keys.
--   KEYS[1] subs          SET of subscription ids
--   KEYS[2] streams       SET of the streams that carry the group `webhooks`
--   KEYS[3] due           ZSET subscription id -> ms when its head may be tried
--                         (absent: nothing pending, or paused)
--   KEYS[4..7]            the org's event streams: kudos events, ledger outbox,
--                         feedback invitations, leaderboard events
--   then per declared subscription (ARGV[3..2+n]):
--     sub:<id>            HASH url, types (",a,b,"), format, paused, paused_reason,
--                         failures, created_ms, description, secret
--     q:<id>              LIST of pending delivery ids, oldest first (the head goes out next)
--     done:<id>           LIST of finished delivery ids, newest first (trimmed to the log size)
--   then per declared delivery (the m ids after the subscriptions' ids):
--     d:<delivery id>     HASH sub, event, type, body, state, attempts, http, error,
--                         created_ms, last_ms, next_ms, lease, lease_until
-- ARGV[1] = n, ARGV[2] = m, the n subscription ids, the m delivery ids, then
-- the script's own arguments (ARGS).
--
-- Which subscriptions and deliveries a script touches depends on data (the
-- set of subscriptions, a queue's head, a log's tail). Each script first
-- finds them with reads of declared keys only; when one is not declared it
-- writes nothing and answers {{'NEED_KEYS'}, {subscription ids}, {delivery
-- ids}}: the caller declares them too and calls again (a bounded number of times).
local SUBS, STREAMS, DUE = KEYS[1], KEYS[2], KEYS[3]
local GROUP = 'webhooks'

-- Event type -> the index in KEYS of the stream that carries it.
local STREAM_OF = {
  ['kudos.sent'] = 4, ['kudos.boosted'] = 4,
  ['redemption.fulfilled'] = 5,
  ['survey.invitation'] = 6,
  ['badge.earned'] = 7, ['streak.extended'] = 7, ['period.closed'] = 7,
}

local SUB, Q, DONE, D, ARGS = {}, {}, {}, {}, {}
do
  local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
  for i = 1, n do
    local id, k = ARGV[2 + i], 7 + (i - 1) * 3
    SUB[id], Q[id], DONE[id] = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  end
  for j = 1, m do D[ARGV[2 + n + j]] = KEYS[7 + 3 * n + j] end
  for i = 3 + n + m, #ARGV do ARGS[#ARGS + 1] = ARGV[i] end
end

-- Planning: what is touched but not declared.
local missing_subs, missing_deliveries, missing = {}, {}, {}
local function want_sub(id)
  if not SUB[id] and not missing['s' .. id] then
    missing['s' .. id] = true
    missing_subs[#missing_subs + 1] = id
  end
end
local function want_delivery(id)
  if not D[id] and not missing['d' .. id] then
    missing['d' .. id] = true
    missing_deliveries[#missing_deliveries + 1] = id
  end
end
-- The NEED_KEYS answer, or nil when everything wanted is declared.
local function need_keys()
  if #missing_subs == 0 and #missing_deliveries == 0 then return nil end
  return {{'NEED_KEYS'}, missing_subs, missing_deliveries}
end
-- Every subscription of the org.
local function want_every_sub()
  for _, sub in ipairs(redis.call('SMEMBERS', SUBS)) do want_sub(sub) end
end
-- The head delivery of a subscription's queue (schedule() reads it).
local function want_head(sub)
  if not SUB[sub] then return want_sub(sub) end
  local head = redis.call('LINDEX', Q[sub], 0)
  if head then want_delivery(head) end
end
-- The deliveries push_done drops from the log when `pushes` more go in.
local function want_trimmed(sub, pushes, size)
  if not SUB[sub] then return want_sub(sub) end
  local log_length = redis.call('LLEN', DONE[sub])
  local excess = math.min(log_length + pushes - size, log_length)
  if excess <= 0 then return end
  for _, did in ipairs(redis.call('LRANGE', DONE[sub], -excess, -1)) do want_delivery(did) end
end

-- The key of a declared delivery; planning made sure it is.
local function delivery_key(id)
  local key = D[id]
  if not key then
    error({err = 'INTERNAL webhooks: delivery ' .. tostring(id) .. ' was not planned for'})
  end
  return key
end

-- A finished delivery goes to the head of the log; the log keeps `size`.
local function push_done(sub, did, size)
  local log = DONE[sub]
  redis.call('LPUSH', log, did)
  while redis.call('LLEN', log) > size do
    local old = redis.call('RPOP', log)
    redis.call('DEL', delivery_key(old))
  end
end

-- The subscription's place in `due`: its head's next attempt (or lease end).
local function schedule(sub)
  if redis.call('HGET', SUB[sub], 'paused') == '1' then
    redis.call('ZREM', DUE, sub)
    return
  end
  local head = redis.call('LINDEX', Q[sub], 0)
  if not head then
    redis.call('ZREM', DUE, sub)
    return
  end
  local d = delivery_key(head)
  local at = tonumber(redis.call('HGET', d, 'next_ms') or '0')
  local lease_until = tonumber(redis.call('HGET', d, 'lease_until') or '0')
  if lease_until > at then at = lease_until end
  redis.call('ZADD', DUE, at, sub)
end

-- Creates or destroys the group `webhooks` on each stream so that exactly
-- the streams some subscription needs carry it: a group holds the stream's
-- trim (docs/retention.md), so an org without subscriptions keeps none.
-- Every subscription must be declared (want_every_sub).
local function reconcile_groups()
  local needed = {}
  for _, sub in ipairs(redis.call('SMEMBERS', SUBS)) do
    local types = redis.call('HGET', SUB[sub], 'types') or ''
    for t in string.gmatch(types, '[^,]+') do
      local k = STREAM_OF[t]
      if k then needed[k] = true end
    end
  end
  for k = 4, 7 do
    local stream = KEYS[k]
    local has = redis.call('SISMEMBER', STREAMS, stream) == 1
    if needed[k] and not has then
      -- New events only: a subscription starts with the events after it.
      local ok = redis.pcall('XGROUP', 'CREATE', stream, GROUP, '$', 'MKSTREAM')
      if type(ok) == 'table' and ok.err and not string.find(ok.err, 'BUSYGROUP') then
        return redis.error_reply(ok.err)
      end
      redis.call('SADD', STREAMS, stream)
    elseif has and not needed[k] then
      redis.pcall('XGROUP', 'DESTROY', stream, GROUP)
      redis.call('SREM', STREAMS, stream)
    end
  end
  return nil
end
