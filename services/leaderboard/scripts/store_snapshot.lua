-- Stores a compaction's snapshot only while the compaction still holds the
-- org's compaction lock and only if the snapshot covers at least the marks of
-- the stored one: a compaction whose lock lapsed to another replica (which
-- may have trimmed the streams to newer marks since) must not put back an
-- older snapshot, or a rebuild from it + the trimmed tails misses entries.
-- KEYS[1]: the compaction lock. KEYS[2]: the snapshot. KEYS[3]: the
-- snapshot's marks (hash k, l). ARGV[1]: the lock token. ARGV[2]: the
-- snapshot bytes. ARGV[3], ARGV[4]: its kudos and ledger marks ("0-0": none).
-- Returns 1 stored, 0 the lock is not ours, -1 older than the stored marks.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local function older(a, b)  -- stream id a < b
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, a_seq, b_ms, b_seq = tonumber(a_ms), tonumber(a_seq), tonumber(b_ms), tonumber(b_seq)
  if a_ms ~= b_ms then return a_ms < b_ms end
  return a_seq < b_seq
end
local stored = redis.call('HMGET', KEYS[3], 'k', 'l')
if (stored[1] and older(ARGV[3], stored[1])) or (stored[2] and older(ARGV[4], stored[2])) then
  return -1
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], 'k', ARGV[3], 'l', ARGV[4])
return 1
