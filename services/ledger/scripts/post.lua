-- PostTransfers. KEYS: bal, seq, journal, outbox, then per transfer its
-- tx:<id>, acct:<debit>, acct:<credit>, and spent:<person>:<period> (debit
-- kind A) or held:/holds:<person> (E) (LedgerStore::Post).
-- ARGV: now_ms, event header, period key, allowance limit, spent TTL seconds,
-- linked ("1"/"0"), then TF fields per transfer (see read_transfer).
-- Linked: every transfer is checked first (each seeing the ones before it),
-- then all are applied; the first failure returns alone and nothing is
-- written. Unlinked: each is checked and applied in turn.
-- Returns one row per transfer {index, code, created, payload, n1, n2}.
local ctx = new_ctx(ARGV[1], ARGV[3], ARGV[4], ARGV[5])
local linked = ARGV[6] == '1'
local transfers = {}
for i = 7, #ARGV, TF do transfers[#transfers + 1] = read_transfer(i) end
-- Keys that depend on what is stored (an E debit's expired holds), before
-- anything is written.
for _, t in ipairs(transfers) do
  if t.dkind == 'E' then holds_ready(t.dperson, ctx.now) end
end
local need = need_reply()
if need then return need end
local results = {}
if linked then
  for _, t in ipairs(transfers) do
    local err, new = check(t, ctx)
    if err then return {err} end
    if new then record(t, ctx) end
  end
  for _, t in ipairs(transfers) do results[#results + 1] = apply(t, ctx) end
else
  for _, t in ipairs(transfers) do
    local err = check(t, ctx)
    if err then results[#results + 1] = err else results[#results + 1] = apply(t, ctx) end
  end
end
flush_outbox(ctx, ARGV[2])
return results
