-- Rewards redemptions (issue 18). KEYS: rdm:<id>, the person's held/holds,
-- rw:awaiting:<person> and rw:p:<person>, rw:item:<item> of a catalog one,
-- rw:seq, rw:all, rw:open, rw:awaiting_points, fulfil: the transfer's keys
-- as post.lua's, and "audit:{org}" (same slot). On an existing redemption
-- the person and item are the stored ones: a call without their keys
-- answers NEED_KEYS naming them, before writing anything. scripts/lib.lua and the bounds (MAX_PENDING,
-- MAX_AWAITING, MAX_AMOUNT, MAX_LISTED, MAX_LISTED_PER_PERSON) are prepended
-- by the C++ side.
--
-- A redemption is an ordinary ledger redemption record rdm:<id> (id
-- "rwd_..."), so its hold is in holds:<person> / held:<person>
-- like the ledger's own and every balance read and debit check counts it.
-- Its hold never expires (score NEVER): an admin fulfils or declines it,
-- the owner cancels it. Extra fields: kind (CATALOG/CUSTOM), item, qty,
-- description, stock_taken (units taken from a limited stock), update_ms,
-- decided_by, reason, seq; states AWAITING (custom, nothing held), PENDING,
-- FULFILLED, DECLINED, CANCELLED.
-- Other keys: rw:seq counter (listing order), rw:all and
-- rw:p:<person> ZSETs of ids by seq (trimmed to the newest MAX_LISTED /
-- MAX_LISTED_PER_PERSON), rw:open ZSET of awaiting and pending ids,
-- rw:awaiting:<person> ZSET (at most MAX_AWAITING), rw:awaiting_points.
--
-- ARGV: op, now_ms, id, actor, finished ttl (seconds), audit count n, then n
-- field/value strings of an audit entry (written only when the call changes
-- the redemption), then per op:
--   redeem:  person, request_id, item_id, quantity
--   request: person, request_id, name, description, points
--   approve, cancel: (reason for cancel)
--   decline: reason
--   fulfill: event header, TF transfer fields (earned -> rewards)
-- Returns {code, n1, n2, HGETALL of the redemption}; OUT_OF_BOUNDS:
-- {code, 0, 0, {'bound', "account\tstored balance"}}.
local op, now, id, actor = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local finished_ttl = ARGV[5]
local audit_count = tonumber(ARGV[6])
local base = 7 + audit_count
local rdm_key = key('rdm:' .. id)
local NEVER = 253402300799000  -- 9999-12-31: a catalog hold never expires

local function reply(code, n1, n2)
  return {code, n1 or 0, n2 or 0, redis.call('HGETALL', rdm_key)}
end

local function changed()
  if audit_count > 0 then redis.call('XADD', AUDIT, '*', unpack(ARGV, 7, base - 1)) end
  return reply('OK', 1, 0)
end

-- FUNDS / CAP / OUT_OF_BOUNDS refusal of a new hold of `points`, or nil.
local function refuse_hold(person, points)
  local held = held_points(person, now)
  if redis.call('ZCARD', key('holds:' .. person)) >= MAX_PENDING then
    return {'CAP', MAX_PENDING, 0, {}}
  end
  local account = 'earned:' .. person
  local stored, balance = bounded_balance(account, 0, 0)
  if balance == nil then return {'OUT_OF_BOUNDS', 0, 0, {'bound', account .. '\t' .. stored}} end
  if balance - held < points then return {'FUNDS', balance, held, {'points', int(points)}} end
  return nil
end

local function hold(person, points)
  redis.call('ZADD', key('holds:' .. person), NEVER, id)
  add_held(person, points)
end

local function trim(index, keep)
  local n = redis.call('ZCARD', index)
  if n > keep then redis.call('ZREMRANGEBYRANK', index, 0, n - keep - 1) end
end

-- A new redemption in the listings and the open queue.
local function index(person)
  local seq = redis.call('INCR', key('rw:seq'))
  redis.call('HSET', rdm_key, 'seq', seq)
  redis.call('ZADD', key('rw:all'), seq, id)
  redis.call('ZADD', key('rw:p:' .. person), seq, id)
  redis.call('ZADD', key('rw:open'), seq, id)
  trim(key('rw:all'), MAX_LISTED)
  trim(key('rw:p:' .. person), MAX_LISTED_PER_PERSON)
end

-- A retry finds the stored one: the same payload is OK, another CONFLICT.
local function retry(expected)
  local stored = redis.call('HMGET', rdm_key, 'kind', 'item', 'qty', 'reward', 'points')
  for i = 1, 5 do
    if expected[i] ~= nil and stored[i] ~= expected[i] then return reply('CONFLICT', 0, 0) end
  end
  return reply('OK', 0, 0)
end

if op == 'redeem' then
  local person, request_id, item, qty = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  if not holds_ready(person, now) then return need_reply() end
  if redis.call('EXISTS', rdm_key) == 1 then return retry({'CATALOG', item, qty, nil, nil}) end
  local item_key = key('rw:item:' .. item)
  local f = redis.call('HMGET', item_key, 'name', 'description', 'price', 'stock', 'unlimited',
                       'active', 'archived')
  if not f[1] then return {'NO_ITEM', 0, 0, {}} end
  if f[7] == '1' then return {'ARCHIVED', 0, 0, {}} end
  if f[6] ~= '1' then return {'INACTIVE', 0, 0, {}} end
  local units = tonumber(qty)
  local points = tonumber(f[3]) * units
  if points > MAX_AMOUNT then return {'TOO_MUCH', points, MAX_AMOUNT, {}} end
  local limited = f[5] ~= '1'
  if limited and tonumber(f[4]) < units then return {'OUT_OF_STOCK', tonumber(f[4]), units, {}} end
  local refusal = refuse_hold(person, points)
  if refusal then return refusal end
  local taken = 0
  if limited then
    redis.call('HINCRBY', item_key, 'stock', -units)
    taken = units
  end
  redis.call('HINCRBY', item_key, 'reserved', units)
  bump_item_version(item_key)
  redis.call('HSET', rdm_key, 'person', person, 'reward', f[1], 'description', f[2],
             'points', int(points), 'state', 'PENDING', 'create_ms', ARGV[2],
             'update_ms', ARGV[2], 'expire_ms', int(NEVER), 'request_id', request_id,
             'kind', 'CATALOG', 'item', item, 'qty', qty, 'stock_taken', taken)
  hold(person, points)
  index(person)
  return changed()
end

if op == 'request' then
  local person, request_id = ARGV[base], ARGV[base + 1]
  local name, description, points = ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  if redis.call('EXISTS', rdm_key) == 1 then return retry({'CUSTOM', nil, nil, name, points}) end
  local awaiting = key('rw:awaiting:' .. person)
  if redis.call('ZCARD', awaiting) >= MAX_AWAITING then return {'AWAITING_CAP', MAX_AWAITING, 0, {}} end
  redis.call('HSET', rdm_key, 'person', person, 'reward', name, 'description', description,
             'points', points, 'state', 'AWAITING', 'create_ms', ARGV[2], 'update_ms', ARGV[2],
             'expire_ms', int(NEVER), 'request_id', request_id, 'kind', 'CUSTOM', 'qty', '1',
             'stock_taken', '0')
  redis.call('ZADD', awaiting, now, id)
  redis.call('INCRBY', key('rw:awaiting_points'), points)
  index(person)
  return changed()
end

-- The ops on an existing redemption.
local f = redis.call('HMGET', rdm_key, 'person', 'state', 'points', 'kind', 'item', 'qty',
                     'stock_taken')
local person, state, points, kind = f[1], f[2], tonumber(f[3]), f[4]
if not person or not kind then return {'NOT_FOUND', 0, 0, {}} end

-- The stored person's and item's keys, before anything is written.
if not declared('rw:awaiting:' .. person) then wants('person', person) end
holds_ready(person, now)
if kind == 'CATALOG' and f[5] and not declared('rw:item:' .. f[5]) then wants('item', f[5]) end
if op == 'fulfill' then
  local debited = ARGV[base + 1 + 8]  -- the transfer's dperson (read_transfer)
  if debited ~= person then holds_ready(debited, now) end
end
local need = need_reply()
if need then return need end

-- Leaves the open queue; the record outlives its listing by finished_ttl.
local function finish(new_state, extra)
  redis.call('HSET', rdm_key, 'state', new_state, 'update_ms', ARGV[2], unpack(extra))
  redis.call('ZREM', key('rw:open'), id)
  redis.call('EXPIRE', rdm_key, finished_ttl)
end

-- Points and stock go back (a pending one), or the request leaves the
-- approval queue (an awaiting one).
local function give_back()
  if state == 'AWAITING' then
    redis.call('ZREM', key('rw:awaiting:' .. person), id)
    redis.call('DECRBY', key('rw:awaiting_points'), int(points))
    return
  end
  held_points(person, now)
  redis.call('ZREM', key('holds:' .. person), id)
  add_held(person, -points)
  if kind == 'CATALOG' then
    local item_key = key('rw:item:' .. f[5])
    if redis.call('EXISTS', item_key) == 1 then
      redis.call('HINCRBY', item_key, 'reserved', -tonumber(f[6]))
      -- Units taken from a limited stock return while it is still limited.
      if redis.call('HGET', item_key, 'unlimited') ~= '1' and tonumber(f[7]) > 0 then
        redis.call('HINCRBY', item_key, 'stock', f[7])
      end
      bump_item_version(item_key)
    end
  end
end

if op == 'approve' then
  if kind ~= 'CUSTOM' then return reply('NOT_CUSTOM', 0, 0) end
  if state == 'PENDING' or state == 'FULFILLED' then return reply('OK', 0, 0) end
  if state ~= 'AWAITING' then return reply('FAILED_PRECONDITION', 0, 0) end
  local refusal = refuse_hold(person, points)
  if refusal then return refusal end
  redis.call('ZREM', key('rw:awaiting:' .. person), id)
  redis.call('DECRBY', key('rw:awaiting_points'), int(points))
  hold(person, points)
  redis.call('HSET', rdm_key, 'state', 'PENDING', 'update_ms', ARGV[2], 'decided_by', actor)
  return changed()
end

if op == 'decline' or op == 'cancel' then
  local target = op == 'decline' and 'DECLINED' or 'CANCELLED'
  if state == target then return reply('OK', 0, 0) end
  if state ~= 'PENDING' and state ~= 'AWAITING' then return reply('FAILED_PRECONDITION', 0, 0) end
  give_back()
  local extra = {'reason', ARGV[base]}
  if op == 'decline' then extra = {'reason', ARGV[base], 'decided_by', actor} end
  finish(target, extra)
  return changed()
end

if op == 'fulfill' then
  if state == 'FULFILLED' then return reply('OK', 0, 0) end
  if state ~= 'PENDING' then return reply('FAILED_PRECONDITION', 0, 0) end
  held_points(person, now)
  local ctx = new_ctx(ARGV[2], '', 0, 0)
  local t = read_transfer(base + 1)
  -- This hold is released by the fulfilment: the debit must fit what is
  -- available without it. Nothing is written until the check passed.
  ctx.released[person] = points
  local err = check(t, ctx)
  if err then
    if err[2] == 'CONFLICT' then return reply('CONFLICT', 0, 0) end
    if err[2] == 'OUT_OF_BOUNDS' then return {'OUT_OF_BOUNDS', 0, 0, {'bound', err[4]}} end
    return reply('FUNDS', err[5], err[6])
  end
  redis.call('ZREM', key('holds:' .. person), id)
  add_held(person, -points)
  apply(t, ctx)
  if kind == 'CATALOG' then
    local item_key = key('rw:item:' .. f[5])
    if redis.call('EXISTS', item_key) == 1 then
      redis.call('HINCRBY', item_key, 'reserved', -tonumber(f[6]))
      redis.call('HINCRBY', item_key, 'fulfilled', f[6])
      bump_item_version(item_key)
    end
  end
  finish('FULFILLED', {'transfer_id', t.id, 'decided_by', actor})
  flush_outbox(ctx, ARGV[base])
  return changed()
end

return redis.error_reply('INVALID_ARGUMENT unknown rewards redemption op ' .. tostring(op))
