-- Moves up to ARGV[1] scheduled jobs that are due by Redis's own clock to the ready set (in
-- fair order, as they become ready), wakes idle workers, and returns the milliseconds until the
-- next scheduled job is due ('-1': none), then their ids.
-- KEYS[1] ready, KEYS[2] scheduled, KEYS[3] rounds, KEYS[4] served.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local ids = {'-1'}
local was_empty = #due > 0 and redis.call('ZCARD', KEYS[1]) == 0
for _, member in ipairs(due) do
  local id, score = due_score(KEYS[3], KEYS[4], member)
  if id then
    redis.call('ZADD', KEYS[1], score, id)
    ids[#ids + 1] = id
  end
  redis.call('ZREM', KEYS[2], member)
end
wake_idle(KEYS[1], was_empty, #ids - 1)
local next_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if next_due[2] then
  ids[1] = string.format('%.0f', math.max(0, tonumber(next_due[2]) - now))
end
return ids
