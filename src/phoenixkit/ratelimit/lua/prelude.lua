-- phoenixkit rate limit: prelude shared by every algorithm (one script = prelude .. body .. epilogue)
-- KEYS[1]: the state   KEYS[2]: the penalty block   (one hash tag: the same Cluster slot)
-- ARGV[1]: 7 little-endian doubles (one argument, decoded in C by the struct library):
--   now (NaN: use the server's TIME), cost, consume (1/0), limit, period, burst, block_for
-- Reply: 4 little-endian doubles: allowed (1/0), remaining, reset_after, retry_after
-- Numbers go to redis.call as they are: Redis writes them with %.17g (exact round trip), so
-- there is no string.format here. TTLs are ceil((seconds + SLACK) * 1000) ms, inlined.
local now, cost, consume, limit, period, burst, block_for = struct.unpack('<ddddddd', ARGV[1])
if now ~= now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
consume = consume == 1
local EPS = 1e-6
local CEPS = 1e-9
local SLACK = 1
if block_for > 0 then
  local blocked_until = tonumber(redis.call('GET', KEYS[2]))
  if blocked_until and blocked_until > now + EPS then
    return struct.pack('<dddd', 0, 0, blocked_until - now, blocked_until - now)
  end
end
local allowed, remaining, reset_after, retry_after
