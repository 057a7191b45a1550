-- sliding-window counter: KEYS[1] packs (window index, previous count, current count)
-- (twin of core.counter_decide)
local window = math.floor(now / period)
local elapsed = now / period - window
local prev, curr = 0, 0
local state = redis.call('GET', KEYS[1])
if state then
  local w, p, c = struct.unpack('<ddd', state)
  if w == window then
    prev = p
    curr = c
  elseif w == window - 1 then
    prev = c
  end
end
local weighted = prev * (1 - elapsed) + curr
if weighted + cost <= limit + CEPS then
  allowed = 1
  curr = curr + cost
  remaining = math.max(0, math.floor(limit - weighted - cost + CEPS))
  reset_after = (2 - elapsed) * period
  retry_after = 0
  if consume then
    redis.call('SET', KEYS[1], struct.pack('<ddd', window, prev, curr), 'PX', ARGV[2])
  end
else
  allowed = 0
  if curr + cost <= limit then
    retry_after = (1 - (limit - curr - cost) / prev - elapsed) * period
  else
    retry_after = (1 - elapsed + 1 - (limit - cost) / curr) * period
  end
  if curr > 0 then
    reset_after = (2 - elapsed) * period
  else
    reset_after = (1 - elapsed) * period
  end
  remaining = math.max(0, math.floor(limit - weighted + CEPS))
  retry_after = math.max(retry_after, EPS)
end
