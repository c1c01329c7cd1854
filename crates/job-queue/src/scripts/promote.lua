-- Moves up to ARGV[1] scheduled jobs that are due by Redis's own clock to the ready set and
-- returns their ids. Scheduled members are "<id>|<ready score>", so the ready score needs no
-- second lookup.
-- KEYS[1] ready, KEYS[2] scheduled.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
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
