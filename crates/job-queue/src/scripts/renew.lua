-- Extends the leases of jobs to ARGV[1] ms from Redis's own clock (re-creating any that Redis
-- lost), their type's running entries with them. ARGV[2] the key stem, then pairs (id, type).
-- KEYS[1] lease, KEYS[2] leased.
local stem = ARGV[2]
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  local id, job_type = ARGV[i], ARGV[i + 1]
  redis.call('ZADD', KEYS[1], deadline, id)
  redis.call('HSET', KEYS[2], id, job_type)
  redis.call('ZADD', stem .. 'running:' .. job_type, deadline, id)
end
return (#ARGV - 2) / 2
