-- Removes and returns up to ARGV[1] leases that expired by Redis's own clock (with their types'
-- running entries). Removing them in the same script means only one reaper handles each
-- expired lease. ARGV[2] the key stem.
-- KEYS[1] lease, KEYS[2] leased.
local stem = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local wake = false
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  for _, id in ipairs(expired) do
    local job_type = redis.call('HGET', KEYS[2], id)
    if job_type then
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZREM', stem .. 'running:' .. job_type, id)
      if redis.call('DEL', stem .. 'blocked:' .. job_type) == 1 then
        wake = true
      end
    end
  end
end
wake_idle(stem, wake)
return expired
