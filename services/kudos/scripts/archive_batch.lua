-- Moves a batch of old committed kudos (one month, seq ascending, above
-- everything archived so far) into one archive chunk, atomically: the chunk
-- written (new, or the month's open chunk rewritten with the batch appended),
-- the id index extended, the live records and feed entries removed. Refuses
-- with 'CONFLICT' (nothing written) when another replica moved first.
-- KEYS[1] = "kudos:{org}:"
-- ARGV: month (YYYY-MM), chunk (number in the month), chunk_bytes, max_seq,
--       min_new_seq, expected_score ('' = a new chunk, else the open chunk's
--       current score), n, then n times: id, seq, boosts_archived, index_field,
--       index_record, feed_count, feed_1..feed_count
local p = KEYS[1]

-- Removes `id` (at `seq`) from a feed: its head ZSET or the sealed chunk
-- whose range holds `seq` (finish_recognition.lua), dropping a chunk that
-- empties from the feed's chunk list.
local function feed_remove(feed, seq, id)
  local head = p .. feed
  if redis.call('ZREM', head, id) == 1 then return end
  local dir = head .. '#'
  local chunk = redis.call('ZRANGE', dir, seq, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
  if not chunk then return end
  redis.call('ZREM', dir .. chunk, id)
  if redis.call('EXISTS', dir .. chunk) == 0 then redis.call('ZREM', dir, chunk) end
end

local month, chunk, bytes = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_seq, min_new, expected, n = ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local chunks, months, index = p .. 'archive:chunks', p .. 'archive:months', p .. 'archive:index'
local name = month .. ':' .. chunk
local top = redis.call('ZRANGE', chunks, -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= min_new then return 'CONFLICT' end
if expected == '' then
  if tonumber(redis.call('HGET', months, month) or '0') ~= chunk then return 'CONFLICT' end
elseif top[1] ~= name or tonumber(top[2]) ~= tonumber(expected) then
  return 'CONFLICT'
end
local items, i = {}, 8
for k = 1, n do
  local nf = tonumber(ARGV[i + 5])
  -- Committed kudos are STRINGs, or hashes in state COMMITTED from before
  -- 334bb16; gone (archived by another replica) or another hash is a conflict.
  local record = p .. 'kudos:' .. ARGV[i]
  local kind = redis.call('TYPE', record).ok
  if kind == 'hash' then
    if redis.call('HGET', record, 'state') ~= 'COMMITTED' then return 'CONFLICT' end
  elseif kind ~= 'string' then
    return 'CONFLICT'
  end
  items[k] = {i, nf}
  i = i + 6 + nf
end
redis.call('SET', p .. 'archive:' .. name, bytes)
redis.call('ZADD', chunks, max_seq, name)
if expected == '' then redis.call('HSET', months, month, chunk + 1) end
local add = {}
for k = 1, n do
  local at, nf = items[k][1], items[k][2]
  local id, seq, boosts, field = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), ARGV[at + 3]
  redis.call('DEL', p .. 'kudos:' .. id)
  -- Boosts committed since the batch was read stay live, after the archived ones.
  if boosts > 0 then redis.call('LTRIM', p .. 'boosts:' .. id, boosts, -1) end
  for f = 1, nf do feed_remove(ARGV[at + 5 + f], seq, id) end
  add[field] = (add[field] or '') .. ARGV[at + 4]
end
for field, records in pairs(add) do
  redis.call('HSET', index, field, (redis.call('HGET', index, field) or '') .. records)
end
return 'OK'
