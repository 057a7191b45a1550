-- sliding-window log: KEYS[1] is a list of hit times (packed doubles), oldest first, one per
-- unit of cost (twin of core.log_decide)
local n = redis.call('LLEN', KEYS[1])
local drop = 0
local scanning = n > 0 and struct.unpack('<d', redis.call('LINDEX', KEYS[1], 0)) + period <= now + EPS
while scanning and drop < n do
  local batch = redis.call('LRANGE', KEYS[1], drop, drop + 99)
  if #batch == 0 then break end
  for i = 1, #batch do
    if struct.unpack('<d', batch[i]) + period <= now + EPS then
      drop = drop + 1
    else
      scanning = false
      break
    end
  end
end
local count = n - drop
if consume and drop > 0 then redis.call('LTRIM', KEYS[1], drop, -1) end
if count + cost <= limit then
  allowed = 1
  remaining = limit - count - cost
  reset_after = period
  retry_after = 0
  if consume then
    local stamp = struct.pack('<d', now)  -- once, not once per entry
    local entries = {}
    for i = 1, cost do
      entries[#entries + 1] = stamp
      if #entries == 1000 then
        redis.call('RPUSH', KEYS[1], unpack(entries))
        entries = {}
      end
    end
    if #entries > 0 then redis.call('RPUSH', KEYS[1], unpack(entries)) end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
else
  allowed = 0
  local first = 0
  if consume then first = -drop end
  local frees_room = struct.unpack('<d', redis.call('LINDEX', KEYS[1], first + drop + count + cost - limit - 1))
  retry_after = frees_room + period - now
  reset_after = struct.unpack('<d', redis.call('LINDEX', KEYS[1], -1)) + period - now
  remaining = limit - count
end
