-- AdjustBalance. KEYS: the transfer's keys as post.lua's (E debit: the
-- person's held/holds) and "audit:{org}" (same slot).
-- ARGV: now_ms, event header, TF transfer fields, then the field/value pairs
-- of the audit entry (common::audit::AppendCommand after "XADD key *").
-- The audit entry is written by this script, right after the transfer and
-- only when the transfer is new, so both exist or neither does.
local ctx = new_ctx(ARGV[1], '', 0, 0)
local t = read_transfer(3)
if t.dkind == 'E' and not holds_ready(t.dperson, ctx.now) then return need_reply() end
local err = check(t, ctx)
if err then return {err} end
local row = apply(t, ctx)
if row[3] == 1 and #ARGV >= 3 + TF then
  redis.call('XADD', AUDIT, '*', unpack(ARGV, 3 + TF, #ARGV))
end
flush_outbox(ctx, ARGV[2])
return {row}
