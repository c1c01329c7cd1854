-- Drops the leases of the jobs in ARGV[2..] (their attempts ended) and their types' running
-- entries; when a type was waiting for a free slot, wakes idle workers. ARGV[1] the key stem.
-- KEYS[1] lease, KEYS[2] leased.
local stem = ARGV[1]
local wake = false
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[1], id)
  local job_type = redis.call('HGET', KEYS[2], id)
  if job_type then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', stem .. 'running:' .. job_type, id)
    if redis.call('DEL', stem .. 'blocked:' .. job_type) == 1 then
      wake = true
    end
  end
end
wake_idle(stem, wake)
return #ARGV - 1
