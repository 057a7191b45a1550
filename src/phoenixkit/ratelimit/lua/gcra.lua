-- GCRA: KEYS[1] holds the theoretical arrival time (twin of core.gcra_decide)
local interval = period / limit
local tolerance = (limit + burst) * interval
local tat = tonumber(redis.call('GET', KEYS[1]))
local base = now
if tat and tat > now then base = tat end
local new_tat = base + cost * interval
local allow_at = new_tat - tolerance
if allow_at <= now + EPS then
  allowed = 1
  remaining = math.floor((now - allow_at) / interval + CEPS)
  reset_after = new_tat - now
  retry_after = 0
  if consume then
    redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((reset_after + SLACK) * 1000))
  end
else
  allowed = 0
  remaining = math.max(0, math.floor((now + tolerance - base) / interval + CEPS))
  reset_after = base - now
  retry_after = allow_at - now
end
