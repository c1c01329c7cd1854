-- Removes and returns up to ARGV[1] leases that expired by Redis's own clock. Removing them in
-- the same script means only one reaper handles each expired lease.
-- KEYS[1] lease.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
end
return expired
