-- Trims an input stream below a compaction's snapshot, unless a rebuild
-- holds the org: it may be reading entries of an older snapshot's tail (a
-- rebuild taking the lock after this reads the new snapshot). Approximate
-- (MINID ~ ... LIMIT): removes only whole macro nodes below the id, so never
-- past it, and at most LIMIT entries per call, so a first trim of a long
-- stream never blocks Redis; the next compaction continues it.
-- KEYS[1]: the org's rebuild lock. KEYS[2]: the stream. ARGV[1]: the MINID.
-- ARGV[2]: the most entries to remove.
-- Returns the entries removed, or -1 when a rebuild held the org.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
return redis.call('XTRIM', KEYS[2], 'MINID', '~', ARGV[1], 'LIMIT', ARGV[2])
