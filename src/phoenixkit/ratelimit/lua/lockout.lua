-- phoenixkit lockout (twin of lockout.lockout_decide)
-- KEYS[1]: failure times, oldest first   KEYS[2]: the block (one hash tag: one Cluster slot)
-- ARGV: now ('' = the server's TIME), max_failures, window, block_for, op (check/failure/success)
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local max_failures = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local block_for = tonumber(ARGV[4])
local op = ARGV[5]
local EPS = 1e-6
local SLACK = 1
local function fmt(x) return string.format('%.17g', x) end
local function ttl_ms(seconds) return math.ceil((seconds + SLACK) * 1000) end

local failures = redis.call('LRANGE', KEYS[1], 0, -1)
local n = #failures
local drop = 0
while drop < n and tonumber(failures[drop + 1]) + window <= now + EPS do
  drop = drop + 1
end
local live = n - drop
if drop > 0 then redis.call('LTRIM', KEYS[1], drop, -1) end

local blocked_until = tonumber(redis.call('GET', KEYS[2]))
if blocked_until and blocked_until > now + EPS then
  if op == 'success' then redis.call('DEL', KEYS[1]) end
  return {0, 0, fmt(blocked_until - now), fmt(blocked_until - now)}
end
if op == 'success' then
  redis.call('DEL', KEYS[1])
  return {1, max_failures, fmt(0), fmt(0)}
end
if op == 'check' then
  local reset_after = 0
  if live > 0 then reset_after = tonumber(failures[n]) + window - now end
  return {1, max_failures - live, fmt(reset_after), fmt(0)}
end
live = live + 1
if live >= max_failures then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], fmt(now + block_for), 'PX', ttl_ms(block_for))
  return {0, 0, fmt(block_for), fmt(block_for)}
end
redis.call('RPUSH', KEYS[1], fmt(now))
redis.call('PEXPIRE', KEYS[1], ttl_ms(window))
return {1, max_failures - live, fmt(window), fmt(0)}
