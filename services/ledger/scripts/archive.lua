-- Folds the oldest live transfers into the archived checkpoint (one chunk).
-- KEYS: ckpt, ckpt:bal, journal, arch:dir, arch:meta, arch:c:<chunk id>,
-- then per transfer txb:<bucket> and tx:<id>, acct: and arch:a: of its debit and credit
-- (Archiver::Commit). ARGV: expected through_seq, n, chunk id,
-- compressed chunk, its sha256, the checkpoint chain after it, raw bytes,
-- then 4 per transfer in sequence order: id, debit, credit, amount.
-- The C++ side read the journal head and the transfers; this script checks
-- that nothing moved since (another replica's run, a concurrent archive),
-- then in one atomic step: stores the chunk, adds the movements to the
-- checkpoint totals, appends each sequence to both accounts' archive index,
-- and removes the transfers' live records (remove_tx), index entries (every
-- entry at or below the chunk's last sequence) and journal lines.
-- Returns {'OK', new through_seq} or {'RACED', current through_seq}.
local ckpt = key('ckpt')
local through = tonumber(redis.call('HGET', ckpt, 'through_seq') or '0')
if through ~= tonumber(ARGV[1]) then return {'RACED', through} end
local n = tonumber(ARGV[2])
local chunk_id = ARGV[3]
local journal = redis.call('LRANGE', key('journal'), 0, n - 1)
if #journal ~= n then return {'RACED', through} end
local T = 8
for i = 0, n - 1 do
  local b = T + 4 * i
  -- The line as journal_line writes it, or (written before the short
  -- accounts) with whole account names, naming the transfer as
  -- index_member does or (before the packing) by its id.
  local line = journal[i + 1]
  local head = ARGV[b + 1] .. '\t' .. ARGV[b + 2] .. '\t' .. ARGV[b + 3] .. '\t'
  if line ~= journal_line(ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], index_member(ARGV[b])) and
      line ~= head .. index_member(ARGV[b]) and line ~= head .. ARGV[b] then
    return redis.error_reply('ABORTED journal line ' .. (through + i + 1) ..
                             ' is not the transfer the archive read; nothing archived')
  end
  local tx = read_tx(ARGV[b])
  if not tx or tx.seq ~= through + i + 1 then
    return redis.error_reply('DATA_LOSS transfer ' .. ARGV[b] .. ' is not stored at sequence ' ..
                             (through + i + 1) .. '; nothing archived')
  end
end
local totals = {}
local last = through + n
for i = 0, n - 1 do
  local b = T + 4 * i
  local id, debit, credit, amount = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  local packed = seq5(through + i + 1)
  remove_tx(id)
  redis.call('APPEND', key('arch:a:' .. debit), packed)
  redis.call('APPEND', key('arch:a:' .. credit), packed)
  totals[debit] = (totals[debit] or 0) - amount
  totals[credit] = (totals[credit] or 0) + amount
end
-- The archive is the sequence prefix 1..last, so an account's index entries
-- at or below it are all archived, in whichever form (the sequence,
-- index_member or the id) and whoever left them.
for account, total in pairs(totals) do
  redis.call('HINCRBY', key('ckpt:bal'), account, int(total))
  redis.call('ZREMRANGEBYSCORE', key('acct:' .. account), '-inf', int(last))
end
redis.call('SET', key('arch:c:' .. chunk_id), ARGV[4])
redis.call('ZADD', key('arch:dir'), through + 1, chunk_id)
redis.call('HSET', key('arch:meta'), chunk_id,
           int(last) .. ',' .. n .. ',' .. ARGV[5] .. ',' .. ARGV[7])
redis.call('HSET', ckpt, 'through_seq', int(last), 'chain', ARGV[6])
redis.call('HINCRBY', ckpt, 'count', n)
redis.call('HINCRBY', ckpt, 'chunks', 1)
redis.call('HINCRBY', ckpt, 'bytes', #ARGV[4])
redis.call('LTRIM', key('journal'), n, -1)
return {'OK', last}
