-- Finds, and in 'add' mode re-adds, jobs that PostgreSQL says are queued or running but that
-- Redis has in none of its sets. Returns the ids concerned.
-- KEYS[1] scheduled, KEYS[2] lease, KEYS[3] rounds, KEYS[4] served, KEYS[5] leased.
-- ARGV[1]: lease (ms, from Redis's own clock) for rescued running jobs; ARGV[2]: 'check' or
-- 'add'; ARGV[3]: the key stem; then triples (kind, a, b):
--   'r', id, user|priority|type   a pending job (re-added to its type's ready set in fair order)
--   's', member, run_at ms        a scheduled job (member "<id>|<user>|<priority>|<type>")
--   'l', id, type                 a running job: leased anew (and counted against its type's
--                                 concurrency), so the reaper takes it back unless its worker
--                                 is alive and renews the lease
-- A queued job counts as present when it is ready, scheduled or leased (claimed but not yet
-- recorded as running), so a job in flight is never queued twice. A running job counts as
-- present when its lease and its type's running entry both exist.
local stem = ARGV[3]

local function id_of(kind, a)
  if kind == 's' then
    local sep = string.find(a, '|', 1, true)
    if sep then return string.sub(a, 1, sep - 1) end
  end
  return a
end

local function present(kind, a, b, id)
  if kind == 'l' then
    return redis.call('ZSCORE', KEYS[2], id) ~= false
      and redis.call('ZSCORE', stem .. 'running:' .. b, id) ~= false
  end
  if redis.call('ZSCORE', KEYS[2], id) then return true end
  if kind == 's' then
    return redis.call('ZSCORE', KEYS[1], a) ~= false
  end
  local job_type = string.match(b, '^[^|]+|[^|]+|([^|]+)$')
  return job_type ~= nil and redis.call('ZSCORE', ready_key(stem, job_type), id) ~= false
end

local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local add = ARGV[2] == 'add'
local out = {}
local wake = false
for i = 4, #ARGV, 3 do
  local kind, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local id = id_of(kind, a)
  if not present(kind, a, b, id) then
    if add then
      if kind == 'r' then
        local user, priority, job_type = string.match(b, '^([^|]+)|([^|]+)|([^|]+)$')
        if user then
          local score = fair_score(KEYS[3], KEYS[4], user, priority)
          if make_ready(stem, job_type, score, a) then
            wake = true
          end
        end
      elseif kind == 's' then
        redis.call('ZADD', KEYS[1], b, a)
      else
        local leased_until = redis.call('ZSCORE', KEYS[2], a) or deadline
        redis.call('ZADD', KEYS[2], leased_until, a)
        redis.call('HSET', KEYS[5], a, b)
        redis.call('ZADD', stem .. 'running:' .. b, leased_until, a)
      end
    end
    out[#out + 1] = id
  end
end
wake_idle(stem, wake)
return out
