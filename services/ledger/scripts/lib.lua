-- Shared helpers, prepended by the C++ side to every ledger script
-- (LedgerStore builds Script(name, kLedgerLibLua + kLedger<Name>Lua)).
--
-- Every key a script reads or writes comes from KEYS (issue 14: Redis
-- Cluster routes, ASKs and TRYAGAINs a script by its declared keys only, so
-- a script is safe during a slot migration only then; the Script guard,
-- common/redis/redis_client.h, fails any other key). The C++ caller
-- computes them (services/ledger/ledger_keys.h); key(name) below finds the
-- declared key of a name within the org ('bal', 'tx:'..id, ...), and fails
-- when the caller did not pass it. Keys that depend on data the script reads
-- (the redemption records of a person's expired holds, the person of a
-- redemption, the items of a page) are asked for instead: wants() notes them
-- and the script returns need_reply() before writing anything; the caller
-- adds them and runs the script again (LedgerStore::EvalKeyed, <= 3 times).
-- Keys (names within the org, after "ledger:{org}:"):
--   P..'bal'                      HASH account key -> balance
--   P..'seq'                      counter, the journal sequence
--   P..'txb:'..tx_bucket(id)      HASH index_member(id) -> seq5(seq) ..
--                                 char(#fp [+128]) .. fp (the first 8 raw
--                                 bytes of the sha256; 16 under tx:<id>)
--                                 .. [marker byte below 8]
--                                 serialized Transfer [without its id field:
--                                 +128; its trailing sequence: marker 1, its
--                                 reference when the id names it: marker + 2]
--                                 (read_tx, stored_tx); 64 per org
--   P..'tx:'..id                  a transfer written before the buckets:
--                                 STRING, the bucket's value; before it a
--                                 HASH fp (hex), t, seq. read_tx reads both;
--                                 never written
--   P..'acct:'..account           ZSET score = sequence, member = the sequence
--                                 itself (acct_id reads the id off the
--                                 journal), or, written before,
--                                 index_member(transfer id)
--   P..'journal'                  LIST journal_line(debit, credit, amount, index_member(id))
--   P..'outbox'                   STREAM field event = ledger.v1.LedgerEvent
--   P..'spent:'..person..':'..period   counter of allowance spent (with TTL)
--   P..'rdm:'..id                 HASH a redemption
--   P..'holds:'..person           ZSET pending redemption ids, score = expire ms
--   P..'held:'..person            counter, the points of those holds (so no call
--                                 sums holds one by one)
--   P..'policy'                   common.v1.AllowancePolicy (read by C++ only)
--   P..'retention'                common.v1.RetentionPolicy (read by C++ only)
--   P..'ckpt', 'ckpt:bal', 'arch:*'   the archived checkpoint (archive.lua,
--                                 list.lua; format in ledger_archive.h)
-- Nothing is written before every check of a call has passed (except that
-- expired holds are released whenever they are looked at, which changes no
-- balance and is right whatever the outcome).
--
-- MAX_BALANCE and MAX_PENDING are defined by the C++ side in front of this
-- file (LedgerStore, from ledger_rules.h), and WRITE_TX_KEYS (LedgerStore's
-- write_transfer_keys: apply() writes tx:<id> instead of the bucket).
-- Balances stay within +-MAX_BALANCE and amounts within 1e12, so every number here is an integer
-- a double holds exactly, and no HINCRBY can overflow.
-- name within the org -> its declared key; AUDIT: "audit:{org}" when declared.
local DECLARED, AUDIT = {}, nil
for _, k in ipairs(KEYS) do
  local name = string.match(k, '^ledger:%b{}:(.*)$')
  if name then
    DECLARED[name] = k
  elseif string.sub(k, 1, 6) == 'audit:' then
    AUDIT = k
  end
end

local function key(name)
  local k = DECLARED[name]
  if not k then
    error({err = 'ERR UNDECLARED_KEY ledger script needs key ' .. name ..
                 ' that its caller did not pass in KEYS'})
  end
  return k
end

local function declared(name) return DECLARED[name] ~= nil end

-- Keys the caller must add: {tag, value} pairs, tags 'holds' (a person's
-- held/holds), 'rdm' (a redemption record), 'person' (a person's rewards
-- listings), 'item' (a reward item), 'tx' (a transfer).
local NEEDED = {}
local function wants(tag, value)
  NEEDED[#NEEDED + 1] = tag
  NEEDED[#NEEDED + 1] = value
end
-- {'NEED_KEYS', tag, value, ...}, or nil when nothing is missing.
local function need_reply()
  if #NEEDED == 0 then return nil end
  local out = {'NEED_KEYS'}
  for _, v in ipairs(NEEDED) do out[#out + 1] = v end
  return out
end

local function num(v)
  if v == false or v == nil then return 0 end
  return tonumber(v)
end

-- Protobuf varint of a non-negative integer (exact below 2^53).
local function varint(n)
  local out = {}
  while n >= 128 do
    local low = n % 128
    out[#out + 1] = string.char(low + 128)
    n = (n - low) / 128
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

-- `body` as the length-delimited field number `field`.
local function wrap(field, body)
  return string.char(field * 8 + 2) .. varint(#body) .. body
end

-- An integer as Redis wants it (Lua's tostring would write 1e+15).
local function int(n)
  return string.format('%.0f', n)
end

-- A reward item's version moves with every change of the item (an update
-- names the version it was based on: rewards_catalog.lua). Items written
-- before versions existed read as version 1.
local function bump_item_version(item_key)
  local version = tonumber(redis.call('HGET', item_key, 'version') or '1')
  redis.call('HSET', item_key, 'version', int(version + 1))
end

-- A sequence as 5 bytes, big-endian (exact below 2^40): the archive's
-- per-account index P..'arch:a:'..account is these, ascending.
local function seq5(n)
  local bytes = {}
  for i = 5, 1, -1 do
    local low = n % 256
    bytes[i] = string.char(low)
    n = (n - low) / 256
  end
  return table.concat(bytes)
end

-- The sequence at byte `at` (1-based) of such a string.
local function unseq5(s, at)
  local n = 0
  for i = at, at + 4 do n = n * 256 + string.byte(s, i) end
  return n
end

-- A fingerprint as the hash form of a transfer stored it (64 hex digits)
-- in the raw bytes the string form keeps.
local function unhex(h)
  return (string.gsub(h, '%x%x', function(b) return string.char(tonumber(b, 16)) end))
end

-- The serialized Transfer's first field, its transfer_id (field 1, tag 10;
-- ids are at most 128 bytes, so the length is one byte below 128).
local function id_field(id)
  return '\10' .. string.char(#id) .. id
end

-- Where top-level field `number` is or would go in a serialized message
-- whose fields are varints or length-delimited, numbered below 16 (one tag
-- byte; Transfer's are), in field order: the start of the first field
-- numbered `number` or more (#body + 1: none), and that field's last byte
-- when it is `number` itself.
local function locate_field(body, number)
  local at = 1
  while at <= #body do
    local tag = string.byte(body, at)
    local field, wire = math.floor(tag / 8), tag % 8
    if field > number then return at, nil end
    local start = at
    at = at + 1
    if wire == 0 then
      while string.byte(body, at) >= 128 do at = at + 1 end
      at = at + 1
    else
      local len, scale, b = 0, 1, 128
      while b >= 128 do
        b = string.byte(body, at)
        len = len + (b % 128) * scale
        scale = scale * 128
        at = at + 1
      end
      at = at + len
    end
    if field == number then return start, at - 1 end
  end
  return #body + 1, nil
end

-- Transfer.reference (field 6, tag 50) when the transfer id names it: the
-- id is "<reference>:<rest>" with no ':' in the reference (the kudos
-- service's "<kudos id>:<recipient>"), so a stored transfer may leave it out.
local function reference_in_id(id)
  return string.match(id, '^([^:]+):')
end

-- Issue 15 (memory): how the account indexes (acct:) and the journal name a
-- transfer. An id of the form the kudos service gives, 'k' + 24 lower-case
-- hex digits + ':' + the recipient, is "\1" .. the 12 bytes the digits spell
-- .. the recipient (13 bytes fewer in each of its three places); any other
-- id is itself. Ids are printable ASCII, so "\1" marks the packed form;
-- entries written before are ids. ledger::IndexMember / TransferIdOfIndexMember
-- in C++ are the same functions.
local function index_member(id)
  local hex, rest = string.match(id, '^k(' .. string.rep('[0-9a-f]', 24) .. '):(.+)$')
  if not hex then return id end
  return '\1' .. unhex(hex) .. rest
end
local function id_of_member(member)
  if string.byte(member, 1) ~= 1 or #member < 14 then return member end
  local hex = string.gsub(string.sub(member, 2, 13), '.', function(c)
    return string.format('%02x', string.byte(c))
  end)
  return 'k' .. hex .. ':' .. string.sub(member, 14)
end

-- A journal line (ledger::FormatJournalEntry is the same function). Issue
-- 15: when both accounts are an allowance or earned account, "allowance:"
-- is \2 and "earned:" \3, both accounts in the first field (16 B of a kudos
-- transfer's line); versions before this one refuse such a line (DATA_LOSS)
-- rather than read it with other account names.
local JOURNAL_CODES = {['allowance:'] = '\2', ['earned:'] = '\3'}
local function journal_account(account)
  local prefix, person = string.match(account, '^(%a+:)(.*)$')
  local code = prefix and JOURNAL_CODES[prefix]
  if not code or string.find(person, '[%z\1-\31]') then return nil end
  return code .. person
end
local function journal_line(debit, credit, amount, member)
  local d, c = journal_account(debit), journal_account(credit)
  if d and c then return d .. c .. '\t' .. amount .. '\t' .. member end
  return debit .. '\t' .. credit .. '\t' .. amount .. '\t' .. member
end

-- The transfer a journal line names, as index_member wrote it or by its id:
-- what follows the line's third tab (its second in the short form).
local function journal_name(line)
  local first = string.byte(line, 1)
  local at = 0
  for _ = 1, (first == 2 or first == 3) and 2 or 3 do
    at = string.find(line, '\t', at + 1, true)
    if not at then return nil end
  end
  return string.sub(line, at + 1)
end

-- The transfer id of an account index entry (member, sequence) of a live
-- transfer (sequence > through, the archived checkpoint's): an entry whose
-- member is its sequence names the journal's line at that sequence; any
-- other member is index_member(id) or the id (written before). An id that
-- happens to equal its own sequence reads the same either way. nil when the
-- journal has no such line.
local function acct_id(member, seq, through)
  if member ~= int(seq) then return id_of_member(member) end
  local line = redis.call('LINDEX', key('journal'), int(seq - through - 1))
  local name = line and journal_name(line)
  return name and id_of_member(name)
end

-- The bucket (a name for key()) of a transfer id: h = (h * 31 + byte) mod
-- 65521 over its bytes, mod 64; every step is exact in a double.
-- ledger::keys::TransferBucket in C++ is the same function.
local function tx_bucket(id)
  local h = 0
  for i = 1, #id do h = (h * 31 + string.byte(id, i)) % 65521 end
  return 'txb:' .. string.format('%d', h % 64)
end

-- A live transfer {fp, body, seq} from its stored value: seq5(seq) ..
-- char(#fp + 128 if the body's transfer_id field was left out, the key or
-- field names it) .. fp (raw bytes: 8 in a bucket, 16 under tx:<id>) ..
-- body. Since
-- issue 15's packing round the body may start with a marker byte below 8
-- (stored_tx): 1, its sequence field left out (the last: post appends it;
-- the prefix holds it), + 2, its reference left out (reference_in_id). No
-- serialized Transfer starts with such a byte (field 0 does not exist), so
-- versions before this one fail to parse a marked body (an error, retried)
-- rather than read it without those fields. `body` is always the whole
-- serialized Transfer, byte for byte as it was posted.
local function parse_tx(id, v)
  local b = string.byte(v, 6)
  local n = b % 128
  local body = string.sub(v, 7 + n)
  local seq = unseq5(v, 1)
  local marker = string.byte(body, 1)
  if marker and marker < 8 then
    body = string.sub(body, 2)
    if marker % 4 >= 2 then
      local reference = reference_in_id(id)
      local at = locate_field(body, 6)
      body = string.sub(body, 1, at - 1) .. '\50' .. string.char(#reference) .. reference ..
        string.sub(body, at)
    end
    if marker % 2 == 1 then body = body .. string.char(72) .. varint(seq) end
  end
  if b >= 128 then body = id_field(id) .. body end
  return {fp = string.sub(v, 7, 6 + n), body = body, seq = seq}
end

-- What read_tx found in this call (false: nothing), so check() and apply()
-- read a transfer once; apply() and remove_tx() drop what they change.
local TX_READ = {}

-- A live transfer {fp, body, seq}, or nil: its bucket's field or, written
-- before the buckets (issue 15), its own key: a STRING of the same value,
-- or a HASH {fp (64 hex digits), t, seq} whose fingerprint compares by its
-- first 16 bytes.
local function read_tx(id)
  local known = TX_READ[id]
  if known ~= nil then return known or nil end
  local found = nil
  local v = redis.call('HGET', key(tx_bucket(id)), index_member(id))
  if v then
    found = parse_tx(id, v)
  else
    local tx_key = key('tx:' .. id)
    v = redis.pcall('GET', tx_key)
    if type(v) == 'table' and v.err then
      local h = redis.call('HMGET', tx_key, 'fp', 't', 'seq')
      if h[1] then
        found = {fp = string.sub(unhex(h[1]), 1, 16), body = h[2], seq = tonumber(h[3])}
      end
    elseif v then
      found = parse_tx(id, v)
    end
  end
  TX_READ[id] = found or false
  return found
end

-- Removes a live transfer in whichever form it is stored (the archive).
local function remove_tx(id)
  redis.call('HDEL', key(tx_bucket(id)), index_member(id))
  redis.call('DEL', key('tx:' .. id))
  TX_READ[id] = nil
end

-- What a transfer's value keeps after seq5(seq) (parse_tx's format; before
-- the buckets the STRING tx:<id>, not a hash with field names, a hashtable
-- since the body is over 64 bytes: 568 -> ~300 bytes per transfer,
-- docs/retention-ledger.md). The body leaves out
-- what read_tx puts back from the key and the prefix: its transfer_id
-- field (when first), its sequence field (always last: appended by post)
-- and its reference (when the id names it), 30 bytes of a kudos transfer's
-- ~160 with the marker, a size class less for Redis (192 -> 160 B).
local function stored_tx(t)
  local body, flag, marker = t.body, 0, 1
  local head = id_field(t.id)
  -- A bucket's value keeps 8 bytes of the fingerprint (2^-64 that another
  -- transfer under the same id passes for a retry), compared by the length
  -- stored (check); only versions that read the buckets read it. A value for
  -- tx:<id> (WRITE_TX_KEYS) keeps the 16 a version before them compares.
  local fp = WRITE_TX_KEYS and t.fp or string.sub(t.fp, 1, 8)
  if #t.id < 128 and #fp < 128 and string.sub(body, 1, #head) == head then
    body, flag = string.sub(body, #head + 1), 128
  end
  local reference = reference_in_id(t.id)
  local at, last = locate_field(body, 6)
  if reference and last and #reference < 128 and
      string.sub(body, at, last) == '\50' .. string.char(#reference) .. reference then
    body, marker = string.sub(body, 1, at - 1) .. string.sub(body, last + 1), marker + 2
  end
  return string.char(flag + #fp) .. fp .. string.char(marker) .. body
end

-- The person's held counter. It is summed from the holds (bounded by what
-- the old code allowed) when missing (holds made before the counter existed)
-- and when it cannot be right: below zero, or zero with holds / non-zero
-- without (a replica of an older version added or released holds without it
-- during a rolling update). Checking that costs one ZCARD.
local function held_counter(person)
  local held_key = key('held:' .. person)
  local holds = key('holds:' .. person)
  local value = tonumber(redis.call('GET', held_key) or '')
  local hold_count = redis.call('ZCARD', holds)
  if value and value >= 0 and ((value == 0) == (hold_count == 0)) then return value end
  local total = 0
  if hold_count > 0 then
    for _, id in ipairs(redis.call('ZRANGE', holds, 0, -1)) do
      total = total + num(redis.call('HGET', key('rdm:' .. id), 'points'))
    end
  end
  if value or total ~= 0 then redis.call('SET', held_key, int(total)) end
  return total
end

local function add_held(person, delta)
  redis.call('INCRBY', key('held:' .. person), int(delta))
end

-- Releases the expired holds of a person (their redemptions read EXPIRED)
-- and returns the points still held. The work is one counter read plus one
-- step per hold that expired since the last look (at most MAX_PENDING).
local function held_points(person, now)
  local holds = key('holds:' .. person)
  local held = held_counter(person)
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired == 0 then return held end
  local released = 0
  for _, id in ipairs(expired) do
    local r = key('rdm:' .. id)
    local fields = redis.call('HMGET', r, 'state', 'points')
    if fields[1] == 'PENDING' then
      redis.call('HSET', r, 'state', 'EXPIRED')
      released = released + num(fields[2])
    end
  end
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  if released > 0 then add_held(person, -released) end
  return held - released
end

-- Whether held_points(person, now) finds every key it reads declared: the
-- person's held/holds, and the records of the holds it looks at (the expired
-- ones; all of them when the counter must be summed again). Reads only; the
-- missing ones are noted with wants() (at most the person's holds).
local function holds_ready(person, now)
  if not declared('held:' .. person) or not declared('holds:' .. person) then
    wants('holds', person)
    return false
  end
  local holds = key('holds:' .. person)
  local value = tonumber(redis.call('GET', key('held:' .. person)) or '')
  local hold_count = redis.call('ZCARD', holds)
  local ids
  if value and value >= 0 and ((value == 0) == (hold_count == 0)) then
    ids = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  else
    ids = redis.call('ZRANGE', holds, 0, -1)
  end
  local ready = true
  for _, id in ipairs(ids) do
    if not declared('rdm:' .. id) then
      wants('rdm', id)
      ready = false
    end
  end
  return ready
end

local function within_bounds(balance)
  return balance >= -MAX_BALANCE and balance <= MAX_BALANCE
end

-- The stored balance of `account` (a string, as Redis holds it) and, when
-- it and `balance + delta` stay within bounds, its number; else nil.
local function bounded_balance(account, delta, pending)
  local stored = redis.call('HGET', key('bal'), account) or '0'
  local balance = tonumber(stored)
  if balance == nil or not within_bounds(balance) then return stored, nil end
  balance = balance + (pending or 0)
  if not within_bounds(balance + delta) then return stored, nil end
  return stored, balance
end

-- A transfer as C++ passes it: TF consecutive ARGV fields from position i.
-- dkind: 'A' debit is an allowance (spent-per-period check), 'E' debit is an
-- earned account (available must cover it), 'R' a reversal of a kudos of
-- the current period (checked like 'E'; applying it gives the amount back
-- to the credited giver's spent counter of ctx.period), 'N' no check.
local TF = 9
local function read_transfer(i)
  return {index = ARGV[i], id = ARGV[i + 1], fp = ARGV[i + 2], debit = ARGV[i + 3],
          credit = ARGV[i + 4], amount = ARGV[i + 5], body = ARGV[i + 6],
          dkind = ARGV[i + 7], dperson = ARGV[i + 8]}
end

-- limits: person -> their allowance of the period when it differs from
-- `limit` (allowance rules and boosts, issue 18), or nil.
local function new_ctx(now, period, limit, ttl, limits)
  return {now = tonumber(now), period = period, limit = tonumber(limit), ttl = ttl,
          limits = limits or {}, spent = {}, bal = {}, seen = {}, fragments = {},
          released = {}}
end

-- Checks one transfer against Redis plus the effects of the transfers
-- recorded before it in this call. Returns (error_reply_row, is_new).
-- A row is {index, code, created, payload, n1, n2}; OUT_OF_BOUNDS carries
-- "account\tstored balance" and n1 = 1 for the debit, 2 for the credit.
local function check(t, ctx)
  local fp, stored = nil, nil
  local prior = read_tx(t.id)
  if prior then
    fp, stored = prior.fp, prior.body
  elseif ctx.seen[t.id] then
    fp = ctx.seen[t.id].fp
    stored = ctx.seen[t.id].body
  end
  if fp then
    -- Stored: 8 bytes (a bucket), 16 (tx:<id>, the hash form); t.fp: 16.
    if fp == string.sub(t.fp, 1, #fp) then return nil, false end
    return {t.index, 'CONFLICT', 0, stored, 0, 0}, false
  end
  local amount = tonumber(t.amount)
  local debit_stored, balance = bounded_balance(t.debit, -amount, ctx.bal[t.debit])
  if balance == nil then
    return {t.index, 'OUT_OF_BOUNDS', 0, t.debit .. '\t' .. debit_stored, 1, 0}, false
  end
  local credit_stored, credit = bounded_balance(t.credit, amount, ctx.bal[t.credit])
  if credit == nil then
    return {t.index, 'OUT_OF_BOUNDS', 0, t.credit .. '\t' .. credit_stored, 2, 0}, false
  end
  if t.dkind == 'A' then
    local spent = num(redis.call('GET', key('spent:' .. t.dperson .. ':' .. ctx.period))) +
                  (ctx.spent[t.dperson] or 0)
    local limit = ctx.limits[t.dperson] or ctx.limit
    if spent + amount > limit then
      return {t.index, 'RESOURCE_EXHAUSTED', 0, '', spent, limit}, false
    end
  elseif t.dkind == 'E' or t.dkind == 'R' then
    local held = held_points(t.dperson, ctx.now) - (ctx.released[t.dperson] or 0)
    if balance - held < amount then
      return {t.index, 'FAILED_PRECONDITION', 0, '', balance, held}, false
    end
  end
  return nil, true
end

-- Remembers a checked new transfer so later checks of the call see it.
local function record(t, ctx)
  ctx.seen[t.id] = t
  local amount = tonumber(t.amount)
  if t.dkind == 'A' then ctx.spent[t.dperson] = (ctx.spent[t.dperson] or 0) + amount end
  ctx.bal[t.debit] = (ctx.bal[t.debit] or 0) - amount
  ctx.bal[t.credit] = (ctx.bal[t.credit] or 0) + amount
end

-- Applies a checked transfer (or returns the original of a retry).
local function apply(t, ctx)
  local prior = read_tx(t.id)
  if prior then return {t.index, 'OK', 0, prior.body, 0, 0} end
  redis.call('HINCRBY', key('bal'), t.debit, '-' .. t.amount)
  redis.call('HINCRBY', key('bal'), t.credit, t.amount)
  if t.dkind == 'A' then
    local spent = key('spent:' .. t.dperson .. ':' .. ctx.period)
    redis.call('INCRBY', spent, t.amount)
    redis.call('EXPIRE', spent, ctx.ttl)
  elseif t.dkind == 'R' then
    -- The giver's allowance of this period comes back (never below zero).
    local spent = key('spent:' .. string.sub(t.credit, 11) .. ':' .. ctx.period)
    local back = math.min(num(redis.call('GET', spent)), tonumber(t.amount))
    if back > 0 then redis.call('DECRBY', spent, int(back)) end
  end
  local seq = redis.call('INCR', key('seq'))
  -- Transfer.sequence is field 9, varint: tag byte 72.
  local full = t.body .. string.char(72) .. varint(seq)
  local member = index_member(t.id)
  if WRITE_TX_KEYS then
    -- A rolling upgrade: replicas of a version before the buckets read only this.
    redis.call('SET', key('tx:' .. t.id), seq5(seq) .. stored_tx(t))
  else
    redis.call('HSET', key(tx_bucket(t.id)), member, seq5(seq) .. stored_tx(t))
  end
  TX_READ[t.id] = nil
  -- Issue 15 (memory): an index entry is the sequence twice (two small
  -- integers in the listpack instead of the 19-byte member: 34 B a kudos).
  redis.call('ZADD', key('acct:' .. t.debit), seq, int(seq))
  redis.call('ZADD', key('acct:' .. t.credit), seq, int(seq))
  redis.call('RPUSH', key('journal'), journal_line(t.debit, t.credit, t.amount, member))
  -- LedgerEvent.transfers_posted (1) { TransfersPosted.transfers (2) { full } }
  ctx.fragments[#ctx.fragments + 1] = wrap(1, wrap(2, full))
  return {t.index, 'OK', 1, full, seq, 0}
end

-- One outbox entry for everything this call created: the pre-encoded
-- header (org_id, post_time) followed by the fragments; protobuf merges them.
local function flush_outbox(ctx, header)
  if #ctx.fragments > 0 then
    redis.call('XADD', key('outbox'), '*', 'event', header .. table.concat(ctx.fragments))
  end
end
