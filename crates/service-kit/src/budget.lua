-- A budget over several fixed windows, spent atomically in one round trip.
-- KEYS[i]: the counter of window i; ARGV[2i-1]: its limit; ARGV[2i]: its length in ms.
-- When every window has room, spends one unit in each and returns 0. Otherwise spends nothing
-- and returns the milliseconds until the exhausted window resets.
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      -- A counter left without expiry must not block forever.
      redis.call('PEXPIRE', key, ARGV[2 * i])
      ttl = tonumber(ARGV[2 * i])
    end
    return math.max(ttl, 1)
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return 0
