-- Deletes one comment of a kudos; an admin's deletion of someone else's
-- comment is recorded in the audit stream.
-- KEYS[1] = social:comments:<kudos>  KEYS[2] = social:comment_order:<kudos>  KEYS[3] = audit:{org}
-- ARGV: comment_id, actor, audit ('1' = record it), target, time (RFC 3339)
local comments, order, audit = KEYS[1], KEYS[2], KEYS[3]
local id, actor = ARGV[1], ARGV[2]
if redis.call('HDEL', comments, id) == 0 then
  return redis.error_reply("NOT_FOUND comment_id: '" .. id .. "' does not exist on this kudos")
end
redis.call('ZREM', order, id)
if ARGV[3] == '1' then
  redis.call('XADD', audit, '*', 'actor', actor, 'action', 'delete_comment', 'target', ARGV[4],
    'reason', 'moderation', 'time', ARGV[5])
end
return 1
