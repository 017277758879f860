-- Stores a new SCIM token's SHA-256 (never the token) and its description,
-- at most max_tokens per org.
-- KEYS[1] integrations:{org}:scim:tokens (HASH token id -> SHA-256 hex),
-- KEYS[2] integrations:{org}:scim:token_info (HASH token id -> ScimTokenInfo)
-- ARGV: token_id, sha256 hex, info (serialized ScimTokenInfo), max_tokens
local tokens, token_infos = KEYS[1], KEYS[2]
local token_id, digest, info, max_tokens = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HLEN', tokens) >= max_tokens then
  return redis.error_reply('RESOURCE_EXHAUSTED at most ' .. max_tokens ..
    ' SCIM tokens per org: revoke one first (RevokeScimToken)')
end
if redis.call('HEXISTS', tokens, token_id) == 1 then
  return redis.error_reply('ALREADY_EXISTS token id ' .. token_id)
end
redis.call('HSET', tokens, token_id, digest)
redis.call('HSET', token_infos, token_id, info)
return 'OK'
