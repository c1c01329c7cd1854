-- Removes and returns up to ARGV[2] leases that expired at ARGV[1] (ms). Removing them in the
-- same script means only one reaper handles each expired lease.
-- KEYS[1] lease.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
end
return expired
