-- The sizes of the ready sets (all types together), the scheduled set and the lease set.
-- KEYS[1] scheduled, KEYS[2] lease; ARGV[1] the key stem, ARGV[2..] every job type.
local ready = 0
for i = 2, #ARGV do
  ready = ready + redis.call('ZCARD', ready_key(ARGV[1], ARGV[i]))
end
return {ready, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
