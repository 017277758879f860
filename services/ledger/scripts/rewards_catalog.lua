-- Rewards catalog writes and item reads (issue 18). KEYS: rw:item:<id> of
-- the op's item, rw:items, rw:settings, "audit:{org}" (same slot); list: the
-- items of the page (a call without them answers NEED_KEYS naming them).
-- scripts/lib.lua and the bounds
-- (MAX_ITEMS) are prepended by the C++ side (RewardsStore).
-- ARGV: op, now_ms, audit count n, then n field/value strings of an audit
-- entry (written only when the call changes something, in the same atomic
-- step), then per op:
--   create:   item_id, fp (the creation payload), name, description, price,
--             stock, unlimited (0/1), active (0/1)
--   update:   item_id, name, description, price, stock, unlimited, active,
--             the version it was based on ('0': not named)
--   archive:  item_id
--   settings: currency_name, money_currency_code, money_nanos_per_point
--   list:     after (item id, "" = from the start), page size, include
--             inactive (0/1)
-- Keys: rw:item:<id> HASH name, description, price,
-- stock, unlimited, active, archived, reserved, fulfilled, create_ms,
-- update_ms, fp, version (lib.lua bump_item_version); rw:items ZSET of item ids (score 0, listed by lex);
-- rw:settings HASH.
-- Returns {code, n1, HGETALL of the item} (settings: of the settings;
-- list: {'OK', next item id or '', HGETALL, item id, HGETALL, ...}).
local op, now = ARGV[1], ARGV[2]
local audit_count = tonumber(ARGV[3])
local base = 4 + audit_count

local function audit()
  if audit_count > 0 then redis.call('XADD', AUDIT, '*', unpack(ARGV, 4, base - 1)) end
end

local function item_key(id) return key('rw:item:' .. id) end

local function reply(code, n1, id)
  return {code, n1, redis.call('HGETALL', item_key(id))}
end

if op == 'create' then
  local id, fp = ARGV[base], ARGV[base + 1]
  local item = item_key(id)
  local stored = redis.call('HGET', item, 'fp')
  if stored then
    if stored == fp then return reply('OK', 0, id) end
    return reply('CONFLICT', 0, id)
  end
  local count = redis.call('ZCARD', key('rw:items'))
  if count >= MAX_ITEMS then return {'CAP', count, {}} end
  redis.call('HSET', item, 'name', ARGV[base + 2], 'description', ARGV[base + 3],
             'price', ARGV[base + 4], 'stock', ARGV[base + 5], 'unlimited', ARGV[base + 6],
             'active', ARGV[base + 7], 'archived', '0', 'reserved', '0', 'fulfilled', '0',
             'create_ms', now, 'update_ms', now, 'fp', fp, 'version', '1')
  redis.call('ZADD', key('rw:items'), 0, id)
  audit()
  return reply('OK', 1, id)
end

if op == 'update' then
  local id = ARGV[base]
  local item = item_key(id)
  local fields = redis.call('HMGET', item, 'archived', 'name', 'description', 'price', 'stock',
                            'unlimited', 'active', 'version')
  if not fields[1] then return {'NOT_FOUND', 0, {}} end
  if fields[1] == '1' then return reply('ARCHIVED', 0, id) end
  local same = true
  for i = 2, 7 do
    if fields[i] ~= ARGV[base + i - 1] then same = false end
  end
  if same then return reply('OK', 0, id) end  -- a retry of an applied update
  -- The stock is absolute: only an update based on the current version may
  -- set it (a redemption since moved it); without a version, only one that
  -- leaves the stock as stored.
  local version, based_on = tonumber(fields[8] or '1'), tonumber(ARGV[base + 7])
  if based_on ~= 0 and based_on ~= version then return reply('STALE', version, id) end
  local unlimited = ARGV[base + 5]
  local keeps_stock = fields[6] == unlimited and (unlimited == '1' or fields[5] == ARGV[base + 4])
  if based_on == 0 and not keeps_stock then return reply('VERSION_REQUIRED', version, id) end
  redis.call('HSET', item, 'name', ARGV[base + 1], 'description', ARGV[base + 2],
             'price', ARGV[base + 3], 'stock', ARGV[base + 4], 'unlimited', ARGV[base + 5],
             'active', ARGV[base + 6], 'update_ms', now, 'version', int(version + 1))
  audit()
  return reply('OK', 1, id)
end

if op == 'archive' then
  local id = ARGV[base]
  local item = item_key(id)
  local archived = redis.call('HGET', item, 'archived')
  if not archived then return {'NOT_FOUND', 0, {}} end
  if archived == '1' then return reply('OK', 0, id) end
  redis.call('HSET', item, 'archived', '1', 'active', '0', 'update_ms', now)
  bump_item_version(item)
  audit()
  return reply('OK', 1, id)
end

if op == 'settings' then
  local settings = key('rw:settings')
  local stored = redis.call('HMGET', settings, 'currency_name', 'money_currency_code',
                            'money_nanos_per_point')
  if stored[1] ~= ARGV[base] or stored[2] ~= ARGV[base + 1] or stored[3] ~= ARGV[base + 2] then
    redis.call('HSET', settings, 'currency_name', ARGV[base], 'money_currency_code', ARGV[base + 1],
               'money_nanos_per_point', ARGV[base + 2])
    audit()
  end
  return {'OK', 1, redis.call('HGETALL', settings)}
end

if op == 'list' then
  -- At most MAX_ITEMS ids exist, so the scan for a page of active items is
  -- bounded whatever the filter skips.
  local after, size, all = ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2] == '1'
  local from = '-'
  if after ~= '' then from = '(' .. after end
  local ids = redis.call('ZRANGEBYLEX', key('rw:items'), from, '+', 'LIMIT', 0, MAX_ITEMS)
  for _, id in ipairs(ids) do
    if not declared('rw:item:' .. id) then wants('item', id) end
  end
  local need = need_reply()
  if need then return need end
  local out = {'OK', ''}
  local taken = 0
  for _, id in ipairs(ids) do
    local item = item_key(id)
    if all or redis.call('HGET', item, 'active') == '1' then
      if taken == size then
        out[2] = out[#out - 1]
        return out
      end
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGETALL', item)
      taken = taken + 1
    end
  end
  return out
end

return redis.error_reply('INVALID_ARGUMENT unknown rewards catalog op ' .. tostring(op))
