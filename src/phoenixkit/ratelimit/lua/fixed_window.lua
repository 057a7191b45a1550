-- fixed window: KEYS[1] is a hash {w = window index, c = count} (twin of core.fixed_decide)
local window = math.floor(now / period)
local state = redis.call('HMGET', KEYS[1], 'w', 'c')
local count = 0
if state[1] and tonumber(state[1]) == window then count = tonumber(state[2]) end
reset_after = (window + 1) * period - now
if count + cost <= limit then
  allowed = 1
  remaining = limit - count - cost
  retry_after = 0
  if consume then
    redis.call('HSET', KEYS[1], 'w', window, 'c', count + cost)
    redis.call('PEXPIRE', KEYS[1], math.ceil((reset_after + SLACK) * 1000))
  end
else
  allowed = 0
  remaining = limit - count
  retry_after = math.max(reset_after, EPS)
end
