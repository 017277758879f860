-- Adds a comment to a kudos, once per (author, request_id).
-- KEYS[1] = social:comments:<kudos>  (HASH comment id -> Comment pb; '#seq' = the last seq)
-- KEYS[2] = social:comment_order:<kudos>  (ZSET comment id by seq)
-- KEYS[3] = social:commentreq:<author>:<request_id>  (the Comment pb, for retries)
-- ARGV: comment_id, comment pb, max comments per kudos, expire_at_ms (the kudos'
--       live window), request ttl_s
-- Returns {'CREATED', pb} or {'EXISTING', pb} (a retry).
local comments, order, request = KEYS[1], KEYS[2], KEYS[3]
local id, pb, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expire_at_ms, ttl_s = ARGV[4], tonumber(ARGV[5])
local earlier = redis.call('GET', request)
if earlier then return {'EXISTING', earlier} end
local count = redis.call('ZCARD', order)
if count >= max then
  return redis.error_reply('RESOURCE_EXHAUSTED kudos has ' .. count ..
    ' comments, the most one kudos keeps; delete some first')
end
local seq = redis.call('HINCRBY', comments, '#seq', 1)
redis.call('HSET', comments, id, pb)
redis.call('ZADD', order, seq, id)
redis.call('SET', request, pb, 'EX', ttl_s)
-- Comments live as long as their kudos does (docs/retention-kudos.md).
redis.call('PEXPIREAT', comments, expire_at_ms)
redis.call('PEXPIREAT', order, expire_at_ms)
return {'CREATED', pb}
