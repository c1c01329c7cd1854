-- Fixed-window counter in one round trip.
-- KEYS[1]: the counter; ARGV[1]: window length in milliseconds.
-- Returns {count after this hit, milliseconds until the window resets}.
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- A counter left without expiry (e.g. a crash between INCR and PEXPIRE) must not live forever.
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
