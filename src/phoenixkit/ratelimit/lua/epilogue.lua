-- epilogue: the penalty block, then the reply (4 doubles: allowed, remaining, reset, retry)
if allowed == 0 and block_for > 0 then
  remaining = 0
  reset_after = math.max(reset_after, block_for)
  retry_after = math.max(retry_after, block_for)
  if consume then
    redis.call('SET', KEYS[2], struct.pack('<d', now + block_for), 'PX', ARGV[3])
  end
end
return struct.pack('<dddd', allowed, remaining, reset_after, retry_after)
