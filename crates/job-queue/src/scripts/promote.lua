-- Moves up to ARGV[1] scheduled jobs that are due by Redis's own clock to their types' ready
-- sets (in fair order, as they become ready), wakes idle workers, and returns the milliseconds
-- until the next scheduled job is due ('-1': none), then their ids.
-- KEYS[1] scheduled, KEYS[2] rounds, KEYS[3] served; ARGV[2] the key stem.
local stem = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local ids = {'-1'}
local wake = false
for _, member in ipairs(due) do
  local id, score, job_type = due_score(KEYS[2], KEYS[3], member)
  if id then
    if make_ready(stem, job_type, score, id) then
      wake = true
    end
    ids[#ids + 1] = id
  end
  redis.call('ZREM', KEYS[1], member)
end
wake_idle(stem, wake)
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next_due[2] then
  ids[1] = string.format('%.0f', math.max(0, tonumber(next_due[2]) - now))
end
return ids
