-- Writes the mirror of PostgreSQL's paused types unless a newer one is there: KEYS[1] paused
-- (a hash: '_v' the version, then one field per paused type); ARGV[1] the version, ARGV[2] the
-- key stem, ARGV[3..] the paused types. Wakes idle workers (a type may have been resumed).
-- Returns 1 when written, 0 when the mirror was already as new.
local current = tonumber(redis.call('HGET', KEYS[1], '_v'))
if current and current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_v', ARGV[1])
for i = 3, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], '1')
end
wake_idle(ARGV[2], true)
return 1
