-- Moves a chunk of the applied ids of an older version's guard zset (one
-- zset per stream) into their buckets (leaderboard_rules.h GuardKey), the
-- upgrade Store::SplitLegacyGuards runs before the org's first batch.
-- KEYS[1]: the old zset; KEYS[2..]: the chunk's bucket zsets.
-- ARGV[1]: n; then n x (id, score, index of its bucket in KEYS), as the
-- caller read them from KEYS[1].
-- An id moves only while KEYS[1] still holds it with that score, so a chunk
-- another replica moved first (or a stale read) changes nothing; GT keeps a
-- newer score already in the bucket. Redis deletes KEYS[1] once empty, which
-- lets the apply script take the org's batches again.
-- Returns how many ids moved.
local n = tonumber(ARGV[1])
if #ARGV ~= 1 + 3 * n then
  return redis.error_reply('INTERNAL split_guards: argument count')
end
local moved = 0
for i = 0, n - 1 do
  local id, score = ARGV[2 + 3 * i], ARGV[3 + 3 * i]
  local stored = redis.call('ZSCORE', KEYS[1], id)
  if stored and tonumber(stored) == tonumber(score) then
    redis.call('ZADD', KEYS[tonumber(ARGV[4 + 3 * i])], 'GT', score, id)
    redis.call('ZREM', KEYS[1], id)
    moved = moved + 1
  end
end
return moved
