-- A token bucket in one round trip. KEYS[1]: a hash {tokens, at (ms)}; ARGV[1]: tokens added
-- per second; ARGV[2]: the bucket's size (the burst); ARGV[3]: the cost (default 1).
-- Takes `cost` tokens and returns 0; or, when too few are left, takes nothing and returns the
-- milliseconds until enough are. A cost above the burst (a big batch) is accepted once the
-- bucket is full and leaves it in debt, so the sustained rate still holds.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + math.max(0, now_ms - at) * rate / 1000)
local cost = tonumber(ARGV[3]) or 1
local needed = math.min(cost, burst)
local wait = 0
if tokens >= needed then
  tokens = tokens - cost
else
  wait = math.ceil((needed - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now_ms)
-- A full bucket is the same as none: forget it once it would have refilled.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
