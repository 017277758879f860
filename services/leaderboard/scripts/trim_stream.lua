-- Trims an input stream below a compaction's snapshot (XTRIM MINID), unless
-- a rebuild holds the org: it may be reading entries of an older snapshot's
-- tail (a rebuild taking the lock after this reads the new snapshot).
-- KEYS[1]: the org's rebuild lock. KEYS[2]: the stream. ARGV[1]: the MINID.
-- Returns the entries removed, or -1 when a rebuild held the org.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
return redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1])
