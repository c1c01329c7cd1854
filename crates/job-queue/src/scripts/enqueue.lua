-- Adds pending jobs to the ready set in fair order: ARGV holds triples (id, user, priority), in
-- submission order. A job already ready keeps its place. Wakes idle workers.
-- KEYS[1] ready, KEYS[2] rounds, KEYS[3] served.
local was_empty = redis.call('ZCARD', KEYS[1]) == 0
local added = 0
for i = 1, #ARGV, 3 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], fair_score(KEYS[2], KEYS[3], ARGV[i + 1], ARGV[i + 2]), ARGV[i])
    added = added + 1
  end
end
wake_idle(KEYS[1], was_empty, added)
return added
