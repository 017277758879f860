-- Last step of a kudos or a boost, once the ledger answered: COMMITTED
-- (indexes, event) or ABORTED (caps released). Only a PENDING record moves,
-- so a retry racing the reconciler finishes it exactly once.
-- KEYS[1] = "kudos:{org}:"
-- ARGV: kind, id, outcome ("COMMITTED"|"ABORTED"), error_code, error_message
local p = KEYS[1]
local kind, id, outcome = ARGV[1], ARGV[2], ARGV[3]
local record = p .. kind .. ':' .. id
local state = redis.call('HGET', record, 'state')
if not state then
  return redis.error_reply('NOT_FOUND ' .. kind .. " '" .. id .. "' does not exist")
end
if state ~= 'PENDING' then return state end
local seq = redis.call('HGET', record, 'seq')
redis.call('ZREM', p .. 'pending', kind .. ':' .. id)
if outcome == 'COMMITTED' then
  redis.call('HSET', record, 'state', 'COMMITTED')
  local feeds = redis.call('HGET', record, 'feeds')
  for feed in string.gmatch(feeds, '[^,]+') do
    redis.call('ZADD', p .. feed, seq, id)
  end
  if kind == 'boost' then
    redis.call('RPUSH', p .. 'boosts:' .. redis.call('HGET', record, 'kudos_id'),
      redis.call('HGET', record, 'pb'))
  end
  redis.call('XADD', p .. 'events', '*', 'event', redis.call('HGET', record, 'event'))
  return 'COMMITTED'
end
redis.call('HSET', record, 'state', 'ABORTED', 'error_code', ARGV[4], 'error_message', ARGV[5])
local points = tonumber(redis.call('HGET', record, 'points'))
if points > 0 then
  local actor = redis.call('HGET', record, 'actor')
  local week = redis.call('HGET', record, 'week')
  for recipient in string.gmatch(redis.call('HGET', record, 'recipients'), '[^,]+') do
    redis.call('DECRBY', p .. 'pair:' .. actor .. ':' .. recipient .. ':' .. week, points)
  end
end
return 'ABORTED'
