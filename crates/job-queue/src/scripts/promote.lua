-- Moves up to ARGV[2] scheduled jobs due at ARGV[1] (ms) to the ready set and returns their ids.
-- Scheduled members are "<id>|<ready score>", so the ready score needs no second lookup.
-- KEYS[1] ready, KEYS[2] scheduled.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local ids = {}
for _, member in ipairs(due) do
  local sep = string.find(member, '|', 1, true)
  if sep then
    local id = string.sub(member, 1, sep - 1)
    redis.call('ZADD', KEYS[1], string.sub(member, sep + 1), id)
    ids[#ids + 1] = id
  end
  redis.call('ZREM', KEYS[2], member)
end
return ids
