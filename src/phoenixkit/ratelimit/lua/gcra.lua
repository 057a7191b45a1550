-- GCRA: KEYS[1] holds the theoretical arrival time (twin of core.gcra_decide)
local interval = period / limit
local tolerance = (limit + burst) * interval
local base = now
local tat = redis.call('GET', KEYS[1])
if tat then
  tat = struct.unpack('<d', tat)
  if tat > now then base = tat end
end
local new_tat = base + cost * interval
local allow_at = new_tat - tolerance
if allow_at <= now + EPS then
  allowed = 1
  remaining = math.floor((now - allow_at) / interval + CEPS)
  reset_after = new_tat - now
  retry_after = 0
  if consume then
    redis.call('SET', KEYS[1], struct.pack('<d', new_tat), 'PX', ARGV[2])
  end
else
  allowed = 0
  remaining = math.max(0, math.floor((now + tolerance - base) / interval + CEPS))
  reset_after = base - now
  retry_after = allow_at - now
end
