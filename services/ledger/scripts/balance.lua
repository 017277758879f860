-- GetBalance. KEYS[1] = "ledger:{org}:". ARGV: now_ms, account key, person
-- whose holds count ("" for accounts without holds). Expired holds are
-- released on the way. Returns {balance (string), held}.
local held = 0
if ARGV[3] ~= '' then held = held_points(ARGV[3], tonumber(ARGV[1])) end
return {redis.call('HGET', P .. 'bal', ARGV[2]) or '0', held}
