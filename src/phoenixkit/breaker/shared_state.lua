-- Shared circuit-breaker state: one hash per breaker, read and changed atomically.
-- The Redis twin of phoenixkit.breaker.core.BreakerCore for the states every process
-- shares (the sliding window stays in each process: it decides when to ask for "trip").
--
-- KEYS[1]  the breaker's hash
-- ARGV     op, half_open_max_calls, failure_rate_threshold, slow_call_rate_threshold
--          (0: slow calls are not judged), open_duration, open_duration_multiplier,
--          max_open_duration, jitter draw (0 .. jitter), max_wait_in_half_open (-1: none),
--          ttl in ms, now (-1: the server's TIME), then the op's own argument(s)
-- ops      sync | acquire | trip gen | record gen failure slow | release gen | force state
-- returns  {state, generation, seconds remaining (open: until half-open), admitted, probe}
local key = KEYS[1]
local op = ARGV[1]
local max_probes = tonumber(ARGV[2])
local failure_threshold = tonumber(ARGV[3])
local slow_threshold = tonumber(ARGV[4])
local base = tonumber(ARGV[5])
local multiplier = tonumber(ARGV[6])
local cap = tonumber(ARGV[7])
local jitter = tonumber(ARGV[8])
local max_wait = tonumber(ARGV[9])
local ttl = tonumber(ARGV[10])
local now = tonumber(ARGV[11])
local t = redis.call('TIME')
if now < 0 then
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local h = redis.call('HMGET', key, 'state', 'gen', 'opened', 'open_for', 'reopen',
  'half_open_since', 'issued', 'calls', 'failures', 'slow')
local state = h[1] or 'closed'
-- A new hash starts its generations at the server's microseconds, so that a hash that
-- expired and came back never reuses a generation a permit in flight may still carry.
local gen = tonumber(h[2]) or (tonumber(t[1]) * 1000000 + tonumber(t[2]))
local opened = tonumber(h[3]) or 0
local open_for = tonumber(h[4]) or 0
local reopen = tonumber(h[5]) or 0
local half_open_since = tonumber(h[6]) or 0
local issued = tonumber(h[7]) or 0
local calls = tonumber(h[8]) or 0
local failures = tonumber(h[9]) or 0
local slow = tonumber(h[10]) or 0
local dirty = not h[2]

local function to(target)
  state = target
  gen = gen + 1
  issued, calls, failures, slow = 0, 0, 0, 0
  if target == 'half-open' then
    half_open_since = now
  elseif target == 'closed' then
    reopen = 0
  end
  dirty = true
end

local function open()
  local d = base * multiplier ^ reopen
  if d > cap then d = cap end
  d = d * (1 - jitter)
  reopen = reopen + 1
  opened, open_for = now, d
  to('open')
end

local function over(n, f, s)
  if f / n >= failure_threshold then return true end
  return slow_threshold > 0 and s / n >= slow_threshold
end

-- The transitions that time alone causes (one per look, as in the core's poll).
if state == 'open' and now - opened >= open_for then
  to('half-open')
elseif state == 'half-open' and max_wait >= 0 and now - half_open_since >= max_wait then
  open()
end

local admitted, probe = 0, 0
if op == 'acquire' then
  if state == 'closed' or state == 'disabled' then
    admitted = 1
  elseif state == 'half-open' and issued < max_probes then
    issued = issued + 1
    admitted, probe, dirty = 1, 1, true
  end
elseif op == 'trip' then
  -- Only the closed state this caller saw may be opened from its window.
  if state == 'closed' and gen == tonumber(ARGV[12]) then open() end
elseif op == 'record' then
  if state == 'half-open' and gen == tonumber(ARGV[12]) then
    calls = calls + 1
    failures = failures + tonumber(ARGV[13])
    slow = slow + tonumber(ARGV[14])
    dirty = true
    if calls >= max_probes then
      if over(calls, failures, slow) then open() else to('closed') end
    end
  end
elseif op == 'release' then
  if state == 'half-open' and gen == tonumber(ARGV[12]) and issued > 0 then
    issued = issued - 1
    dirty = true
  end
elseif op == 'force' then
  local target = ARGV[12]
  if target == 'open' then
    reopen = 0
    open()
  elseif target == 'closed' or target == 'half-open' or target == 'forced-open'
      or target == 'disabled' then
    to(target)
  else
    return redis.error_reply('unknown breaker state ' .. tostring(target))
  end
elseif op ~= 'sync' then
  return redis.error_reply('unknown breaker op ' .. tostring(op))
end

if dirty then
  redis.call('HSET', key, 'state', state, 'gen', string.format('%d', gen),
    'opened', string.format('%.6f', opened), 'open_for', string.format('%.6f', open_for),
    'reopen', string.format('%d', reopen),
    'half_open_since', string.format('%.6f', half_open_since),
    'issued', string.format('%d', issued), 'calls', string.format('%d', calls),
    'failures', string.format('%d', failures), 'slow', string.format('%d', slow))
end
-- Hand-set states last until changed by hand; others outlive their open time.
if state == 'forced-open' or state == 'disabled' then
  redis.call('PERSIST', key)
else
  local keep = ttl
  if state == 'open' then
    keep = math.max(ttl, math.ceil((opened + open_for - now + 60) * 1000))
  end
  redis.call('PEXPIRE', key, string.format('%d', math.min(keep, 1e15)))
end

local remaining = 0
if state == 'open' then
  remaining = opened + open_for - now
elseif state == 'half-open' then
  if max_wait >= 0 then remaining = half_open_since + max_wait - now else remaining = base end
elseif state == 'forced-open' then
  remaining = -1
end
return {state, string.format('%d', gen), string.format('%.6f', remaining), admitted, probe}
