-- ListTransfers over the live tail and the archive, in one atomic read (so
-- an archive run between the two parts cannot hide or repeat a transfer).
-- KEYS: acct:<account>, arch:a:<account>, arch:dir, ckpt, journal (an index
-- entry names its transfer by its sequence: acct_id), and txb:<bucket> + tx:<id> of the
-- page's live transfers (which ones depends on the index: a call without
-- them answers NEED_KEYS naming them, and writes nothing anyway).
-- ARGV: account key, before (0: from the newest), limit. Newest first: live transfers have higher sequences than archived
-- ones (the archive is a sequence prefix), so the live part comes first.
-- Returns {live bodies, archived sequences, their chunk ids, missing id,
-- more}: at most `limit` entries in all; more = 1 when others follow.
local account, before, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local through = tonumber(redis.call('HGET', key('ckpt'), 'through_seq') or '0')
local entries = redis.call('ZREVRANGEBYSCORE', key('acct:' .. account),
                           before > 0 and ('(' .. ARGV[2]) or '+inf', '-inf',
                           'WITHSCORES', 'LIMIT', 0, limit + 1)
local ids = {}
for i = 1, #entries, 2 do
  local seq = tonumber(entries[i + 1])
  -- At or below `through`: archived (an entry an archive run of a version
  -- before this one left), listed from the archive below.
  if seq > through then
    local id = acct_id(entries[i], seq, through)
    if not id then
      return redis.error_reply('DATA_LOSS the transfer at sequence ' .. int(seq) ..
                               ' is indexed but not in the journal; run VerifyLedger')
    end
    ids[#ids + 1] = id
  end
end
for i = 1, math.min(#ids, limit) do
  if not declared('tx:' .. ids[i]) then wants('tx', ids[i]) end
end
local need = need_reply()
if need then return need end
local live = {}
for i = 1, math.min(#ids, limit) do
  local tx = read_tx(ids[i])
  if not tx then return {{}, {}, {}, ids[i], 0} end
  live[#live + 1] = tx.body
end
if #ids > limit then return {live, {}, {}, '', 1} end
local index = key('arch:a:' .. account)
local count = math.floor(redis.call('STRLEN', index) / 5)
-- pos = how many archived sequences are below `before` (binary search).
local lo, hi = 0, count
if before > 0 then
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if unseq5(redis.call('GETRANGE', index, mid * 5, mid * 5 + 4), 1) < before then
      lo = mid + 1
    else
      hi = mid
    end
  end
else
  lo = count
end
local pos = lo
local first = math.max(0, pos - (limit + 1 - #ids))
local seqs, chunks = {}, {}
if pos > first then
  local packed = redis.call('GETRANGE', index, first * 5, pos * 5 - 1)
  for i = pos - 1, first, -1 do
    if #live + #seqs == limit then break end  -- the one past the page only says "more"
    local seq = unseq5(packed, (i - first) * 5 + 1)
    seqs[#seqs + 1] = int(seq)
    chunks[#chunks + 1] =
        redis.call('ZREVRANGEBYSCORE', key('arch:dir'), seq, '-inf', 'LIMIT', 0, 1)[1] or ''
  end
end
return {live, seqs, chunks, '', (#ids + pos - first > limit) and 1 or 0}
