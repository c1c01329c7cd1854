-- Pops up to ARGV[1] ready jobs (highest priority, then oldest first) and leases them for
-- ARGV[2] ms from Redis's own clock, atomically: two workers never pop the same job, and no
-- worker's clock decides a lease.
-- KEYS[1] ready, KEYS[2] lease.
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local ids = {}
for i = 1, #popped, 2 do
  ids[#ids + 1] = popped[i]
  redis.call('ZADD', KEYS[2], deadline, popped[i])
end
return ids
