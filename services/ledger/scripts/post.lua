-- PostTransfers. KEYS: bal, seq, journal, outbox, the org's registry key
-- (platform:orgs:{<tag>}, same slot), alw:ver, then per transfer its
-- txb:<bucket>, tx:<id>, acct:<debit>, acct:<credit>, and spent:<person>:<period> (debit
-- kind A) or held:/holds:<person> (E, R; R also the credited giver's spent
-- counter), and rev:<original> per reversal (LedgerStore::Post).
-- ARGV: now_ms, event header, period key, allowance limit, spent TTL seconds,
-- linked ("1"/"0"), reversal marker TTL seconds, org id, the allowance
-- version the limits were computed under ('*': not checked), L, then L
-- pairs (person, their limit when not the default), R, then R pairs
-- (transfer index, the transfer id it reverses), then TF fields per transfer
-- (see read_transfer).
-- The version (alw:ver) moves with every change of the policy, a rule, a
-- profile or a boost (allowance.lua, LedgerStore::SetPolicy). Another one
-- than the caller's: {'STALE_ALLOWANCE'} before anything is written (the
-- caller reads the inputs again and runs once more), so the limits are
-- exact at this moment whatever the caller's cache held. A missing version
-- is created as 0, so a retry of this post during a slot migration finds
-- every key it declares on the source.
-- Linked: every transfer is checked first (each seeing the ones before it),
-- then all are applied; the first failure returns alone and nothing is
-- written. Unlinked: each is checked and applied in turn.
-- A reversal also checks the marker rev:<original>: another reversal of the
-- same transfer is a row 'REVERSED' with that reversal's id as payload.
-- Returns {registered, row...}: registered = 1 when the SADD added the org
-- to its registry, then one row per transfer {index, code, created,
-- payload, n1, n2}.
local version = redis.call('GET', key('alw:ver'))
if not version then
  version = '0'
  redis.call('SET', key('alw:ver'), version)
end
if ARGV[9] ~= '*' and ARGV[9] ~= version then return {'STALE_ALLOWANCE'} end

local at = 10
local limits, reverses = {}, {}
local limit_count = tonumber(ARGV[at])
at = at + 1
for _ = 1, limit_count do
  limits[ARGV[at]] = tonumber(ARGV[at + 1])
  at = at + 2
end
local reversal_count = tonumber(ARGV[at])
at = at + 1
for _ = 1, reversal_count do
  reverses[ARGV[at]] = ARGV[at + 1]
  at = at + 2
end
local ctx = new_ctx(ARGV[1], ARGV[3], ARGV[4], ARGV[5], limits)
local linked = ARGV[6] == '1'
local marker_ttl = ARGV[7]
local reversed = {}
local transfers = {}
for i = at, #ARGV, TF do transfers[#transfers + 1] = read_transfer(i) end
-- Keys that depend on what is stored (an E debit's expired holds), before
-- anything is written.
for _, t in ipairs(transfers) do
  if t.dkind == 'E' or t.dkind == 'R' then holds_ready(t.dperson, ctx.now) end
end
local need = need_reply()
if need then return need end
-- The org in its slot's registry, in the same atomic step as its outbox
-- (common/redis/org_registry.h).
local results = {redis.call('SADD', KEYS[5], ARGV[8])}

-- check() and, for a reversal not posted yet, first that its original was
-- not reversed by another transfer (stored, or earlier in this call): that
-- answer wins over the funds the second one would lack.
local function check_post(t)
  local original = reverses[t.index]
  if original and not ctx.seen[t.id] and not read_tx(t.id) then
    local by = reversed[original] or redis.call('GET', key('rev:' .. original))
    if by and by ~= t.id then return {t.index, 'REVERSED', 0, by, 0, 0}, false end
  end
  return check(t, ctx)
end

local function note(t)
  record(t, ctx)
  if reverses[t.index] then reversed[reverses[t.index]] = t.id end
end

local function apply_post(t)
  local row = apply(t, ctx)
  local original = reverses[t.index]
  if original and row[3] == 1 then
    redis.call('SET', key('rev:' .. original), t.id, 'EX', marker_ttl)
  end
  return row
end

if linked then
  for _, t in ipairs(transfers) do
    local err, new = check_post(t)
    if err then return {results[1], err} end
    if new then note(t) end
  end
  for _, t in ipairs(transfers) do results[#results + 1] = apply_post(t) end
else
  for _, t in ipairs(transfers) do
    local err = check_post(t)
    if err then results[#results + 1] = err else results[#results + 1] = apply_post(t) end
  end
end
flush_outbox(ctx, ARGV[2])
return results
