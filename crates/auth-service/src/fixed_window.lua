-- Fixed-window counter in one round trip.
-- KEYS[1]: the counter; ARGV[1]: window length in milliseconds.
-- KEYS[2], optional: another counter, read without counting (at login: the account's failed
-- logins), so that both limits are checked in the same round trip.
-- Returns {count after this hit, milliseconds until the window resets}, followed with KEYS[2]
-- by {its count (0 when absent), milliseconds until it resets}.
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
if KEYS[2] then
  local other = tonumber(redis.call('GET', KEYS[2]) or '0')
  return {count, ttl, other, redis.call('PTTL', KEYS[2])}
end
return {count, ttl}
