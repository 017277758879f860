-- Swaps a rebuilt image in, atomically: readers see the old projections or
-- the new ones, never a mix or none.
-- KEYS[1]: the org's rebuild lock; then n_old keys to delete (the current
-- projections), then n_new staged keys, then their n_new final names, then
-- the org's derived-board cache generation (INCRed: unions cached before the
-- swap are stale).
-- ARGV[1]: the rebuild's token; ARGV[2]: n_old; ARGV[3]: n_new;
-- ARGV[4 ..]: each final key's expiry (unix seconds, 0 = none).
-- Returns n_new.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('ABORTED the rebuild lock was lost (expired); run the rebuild again')
end
local n_old = tonumber(ARGV[2])
local n_new = tonumber(ARGV[3])
if #KEYS ~= 2 + n_old + 2 * n_new or #ARGV ~= 3 + n_new then
  return redis.error_reply('INTERNAL rebuild_swap: key and argument counts disagree')
end
local staged = 1 + n_old
-- Checked before anything changes: a staged key that expired (a rebuild far
-- slower than the staging ttl) aborts with the old projections intact.
-- One EXISTS per chunk of keys, not per key (it counts the keys there).
local chunk = 1000
for from = 1, n_new, chunk do
  local to = math.min(n_new, from + chunk - 1)
  if redis.call('EXISTS', unpack(KEYS, staged + from, staged + to)) ~= to - from + 1 then
    return redis.error_reply('ABORTED the staged image expired; run the rebuild again')
  end
end
for from = 2, 1 + n_old, chunk do
  redis.call('UNLINK', unpack(KEYS, from, math.min(1 + n_old, from + chunk - 1)))
end
for j = 1, n_new do
  local final = KEYS[staged + n_new + j]
  redis.call('RENAME', KEYS[staged + j], final)
  local at = tonumber(ARGV[3 + j])
  if at > 0 then
    redis.call('EXPIREAT', final, at)
  else
    redis.call('PERSIST', final)
  end
end
redis.call('INCR', KEYS[#KEYS])
return n_new
