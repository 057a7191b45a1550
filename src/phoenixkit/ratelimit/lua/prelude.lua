-- phoenixkit rate limit: prelude shared by every algorithm (one script = prelude .. body .. epilogue)
-- KEYS[1]: the state; KEYS[2]: the penalty block, passed only when block_for > 0 (one hash
-- tag: the same Cluster slot)
-- ARGV[1]: 7 little-endian doubles (one argument, decoded in C by the struct library):
--   now (NaN: use the server's TIME), cost, consume (1/0), limit, period, burst, block_for
-- ARGV[2]: the state's expiry in ms, ARGV[3]: the block's (decimal text, computed once per
--   rate by the client: the longest the state can matter, plus one second)
-- Reply: 4 little-endian doubles: allowed (1/0), remaining, reset_after, retry_after
-- Stored numbers are packed doubles too (struct.pack '<d'): exact, and no number is formatted
-- or parsed as text on the hot path (Redis 7.0 formats every Lua number with snprintf).
local now, cost, consume, limit, period, burst, block_for = struct.unpack('<ddddddd', ARGV[1])
if now ~= now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
consume = consume == 1
local EPS = 1e-6
local CEPS = 1e-9
if block_for > 0 then
  local blocked = redis.call('GET', KEYS[2])
  if blocked then
    local blocked_until = struct.unpack('<d', blocked)
    if blocked_until > now + EPS then
      return struct.pack('<dddd', 0, 0, blocked_until - now, blocked_until - now)
    end
  end
end
local allowed, remaining, reset_after, retry_after
