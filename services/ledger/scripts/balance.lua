-- GetBalance. KEYS: bal, and the person's held/holds (plus the records of
-- their expired holds, asked for with NEED_KEYS). ARGV: now_ms, account key, person
-- whose holds count ("" for accounts without holds). Expired holds are
-- released on the way. Returns {balance (string), held}.
local held = 0
if ARGV[3] ~= '' and not holds_ready(ARGV[3], tonumber(ARGV[1])) then return need_reply() end
if ARGV[3] ~= '' then held = held_points(ARGV[3], tonumber(ARGV[1])) end
return {redis.call('HGET', key('bal'), ARGV[2]) or '0', held}
