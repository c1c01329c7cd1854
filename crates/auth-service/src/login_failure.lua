-- Records a failed login on the account of KEYS[1] (the hash described in login_check.lua)
-- from the client ARGV[1]. The record is forgotten ARGV[2] ms after the account's latest failure.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[1], ARGV[1] .. ':t', now_ms)
redis.call('HINCRBY', KEYS[1], '_total', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
