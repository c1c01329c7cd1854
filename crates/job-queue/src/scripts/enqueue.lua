-- Adds pending jobs to their types' ready sets in fair order: ARGV[1] is the key stem, then
-- quadruples (id, user, priority, type) in submission order. A job already ready keeps its
-- place. Wakes idle workers.
-- KEYS[1] rounds, KEYS[2] served.
local stem = ARGV[1]
local added = 0
local wake = false
for i = 2, #ARGV, 4 do
  local id, job_type = ARGV[i], ARGV[i + 3]
  if not redis.call('ZSCORE', ready_key(stem, job_type), id) then
    local score = fair_score(KEYS[1], KEYS[2], ARGV[i + 1], ARGV[i + 2])
    if make_ready(stem, job_type, score, id) then
      wake = true
    end
    added = added + 1
  end
end
wake_idle(stem, wake)
return added
