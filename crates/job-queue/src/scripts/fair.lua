-- Fair order and per-type key names (prepended to the scripts that put jobs in a ready set).
-- A ready score is (1000 - priority) * 2^42 + round. Rounds are per priority: a user's next job
-- gets one round past their previous one, but never a round behind the one being served at
-- that priority (the hash `served`, advanced by claims). So at equal priority users take turns
-- whatever their backlogs, a higher priority always comes first, and one user's jobs keep their
-- order (equal scores pop in member order, and UUID v7 ids sort by creation).
-- Numbers are written with '%.0f': Lua's default formatting keeps only 14 digits.
-- Each job type has its own ready set, "<stem>ready:<type>" (the stem is "<prefix>q:"); a claim
-- merges their heads, so the order across types is the same as in one set.
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

-- The ready set of a type.
local function ready_key(stem, job_type)
  return stem .. 'ready:' .. job_type
end

-- A scheduled-set member "<id>|<user>|<priority>|<type>": returns id, score, type (the score in
-- fair order). Members written before per-type sets (no type) give nil: the caller drops them
-- and the reconciler, which reads PostgreSQL, puts their jobs back.
local function due_score(rounds, served, member)
  local id, user, priority, job_type = string.match(member, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  if id then
    return id, fair_score(rounds, served, user, priority), job_type
  end
  return nil
end

-- Adds a job to its type's ready set; true when that set was empty (idle workers may then need
-- a wake-up).
local function make_ready(stem, job_type, score, id)
  local ready = ready_key(stem, job_type)
  local was_empty = redis.call('EXISTS', ready) == 0
  redis.call('ZADD', ready, score, id)
  return was_empty
end

-- Idle workers wait on the channel "<stem>ready:wake" instead of polling: a script that makes a
-- type's ready set non-empty (or frees a slot of a limited type) publishes there once.
local function wake_idle(stem, wake)
  if wake then
    redis.call('PUBLISH', stem .. 'ready:wake', '1')
  end
end
