-- Ends a rebuild: releases the lock if it is still this rebuild's and, when
-- ARGV[2] is '1' (the rebuild failed), gives its budget back.
-- KEYS[1]: the org's rebuild lock. KEYS[2]: the org's rebuild budget.
-- ARGV[1]: the rebuild's token.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
