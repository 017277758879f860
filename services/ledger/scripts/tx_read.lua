-- The stored transfers of ARGV's ids (reversals read the transfers they
-- reverse first, LedgerStore::Post). KEYS: txb:<bucket> and tx:<id> of each.
-- Returns one serialized Transfer per id, '' for one not stored (live).
local out = {}
for i, id in ipairs(ARGV) do
  local t = read_tx(id)
  out[i] = t and t.body or ''
end
return out
