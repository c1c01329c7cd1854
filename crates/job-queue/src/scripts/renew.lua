-- Extends the leases of the ids in ARGV[2..] to ARGV[1] ms from Redis's own clock (re-creating
-- any that Redis lost).
-- KEYS[1] lease.
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], deadline, ARGV[i])
end
return #ARGV - 1
