-- sliding-window counter: KEYS[1] is a hash {w, p = previous count, c = current count}
-- (twin of core.counter_decide)
local window = math.floor(now / period)
local elapsed = now / period - window
local state = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local prev, curr = 0, 0
if state[1] then
  local w = tonumber(state[1])
  if w == window then
    prev = tonumber(state[2])
    curr = tonumber(state[3])
  elseif w == window - 1 then
    prev = tonumber(state[3])
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
    redis.call('HSET', KEYS[1], 'w', window, 'p', prev, 'c', curr)
    redis.call('PEXPIRE', KEYS[1], math.ceil((reset_after + SLACK) * 1000))
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
