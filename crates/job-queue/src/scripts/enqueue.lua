-- Adds pending jobs to their types' ready sets in fair order: ARGV[1] is the key stem, then
-- quadruples (id, user, priority, type) in submission order. A job already ready keeps its
-- place. Wakes idle workers.
-- KEYS[1] rounds, KEYS[2] served.
--
-- This is fair_score and make_ready (fair.lua) for many jobs at once: each served round, each
-- user's last round and each ready set's emptiness is read once, and each user's new last
-- round written once, so a batch of a thousand jobs of one user costs two commands per job
-- (ZSCORE, ZADD) instead of six.
local stem = ARGV[1]
local added = 0
local wake = false
local served = {}      -- band -> the round served at that priority
local last = {}        -- 'priority:user' -> that user's last round (false: none yet)
local changed = {}     -- the fields of `last` to write back, in first-use order
local checked = {}     -- ready key -> true once its emptiness is known
for i = 2, #ARGV, 4 do
  local id, user, priority, job_type = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ready = ready_key(stem, job_type)
  if not redis.call('ZSCORE', ready, id) then
    local band = 1000 - tonumber(priority)
    local field = priority .. ':' .. user
    if served[band] == nil then
      served[band] = tonumber(redis.call('HGET', KEYS[2], band)) or 0
    end
    if last[field] == nil then
      last[field] = tonumber(redis.call('HGET', KEYS[1], field)) or false
      changed[#changed + 1] = field
    end
    local round = served[band]
    if last[field] and last[field] + 1 > round then
      round = last[field] + 1
    end
    last[field] = round
    if not checked[ready] then
      checked[ready] = true
      if redis.call('EXISTS', ready) == 0 then
        wake = true
      end
    end
    redis.call('ZADD', ready, string.format('%.0f', band * BAND + round), id)
    added = added + 1
  end
end
for _, field in ipairs(changed) do
  redis.call('HSET', KEYS[1], field, string.format('%.0f', last[field]))
end
wake_idle(stem, wake)
return added
