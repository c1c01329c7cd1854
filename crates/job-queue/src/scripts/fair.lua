-- Fair order (prepended to the scripts that put jobs in the ready set).
-- A ready score is (1000 - priority) * 2^42 + round. Rounds are per priority: a user's next job
-- gets one round past their previous one, but never a round behind the one being served at
-- that priority (the hash `served`, advanced by claims). So at equal priority users take turns
-- whatever their backlogs, a higher priority always comes first, and one user's jobs keep their
-- order (equal scores pop in member order, and UUID v7 ids sort by creation).
-- Numbers are written with '%.0f': Lua's default formatting keeps only 14 digits.
local BAND = 4398046511104 -- 2^42

local function fair_score(rounds, served, user, priority)
  local band = 1000 - tonumber(priority)
  local field = priority .. ':' .. user
  local round = tonumber(redis.call('HGET', served, band)) or 0
  local last = tonumber(redis.call('HGET', rounds, field))
  if last and last + 1 > round then
    round = last + 1
  end
  redis.call('HSET', rounds, field, string.format('%.0f', round))
  return string.format('%.0f', band * BAND + round)
end

-- The ready score of a scheduled-set member: "<id>|<user>|<priority>" (or, written before
-- fair order, "<id>|<ready score>"). Returns id, score.
local function due_score(rounds, served, member)
  local id, user, priority = string.match(member, '^([^|]+)|([^|]+)|([^|]+)$')
  if id then
    return id, fair_score(rounds, served, user, priority)
  end
  local old_id, score = string.match(member, '^([^|]+)|([^|]+)$')
  return old_id, score
end

-- Idle workers wait on the channel "<ready key>:wake" instead of polling: a script that makes
-- the ready set non-empty publishes there once.
local function wake_idle(ready, was_empty, added)
  if was_empty and added > 0 then
    redis.call('PUBLISH', ready .. ':wake', '1')
  end
end
