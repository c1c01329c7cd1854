-- Pops up to ARGV[1] ready jobs (highest priority, then oldest first) and leases them until
-- ARGV[2] (ms since the epoch), atomically: two workers never pop the same job.
-- KEYS[1] ready, KEYS[2] lease.
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local ids = {}
for i = 1, #popped, 2 do
  ids[#ids + 1] = popped[i]
  redis.call('ZADD', KEYS[2], ARGV[2], popped[i])
end
return ids
