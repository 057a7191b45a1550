-- fixed window: KEYS[1] packs (window index, count) (twin of core.fixed_decide)
local window = math.floor(now / period)
local count = 0
local state = redis.call('GET', KEYS[1])
if state then
  local w, c = struct.unpack('<dd', state)
  if w == window then count = c end
end
reset_after = (window + 1) * period - now
if count + cost <= limit then
  allowed = 1
  remaining = limit - count - cost
  retry_after = 0
  if consume then
    redis.call('SET', KEYS[1], struct.pack('<dd', window, count + cost), 'PX', ARGV[2])
  end
else
  allowed = 0
  remaining = limit - count
  retry_after = math.max(reset_after, EPS)
end
