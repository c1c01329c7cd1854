-- Finds, and in 'add' mode re-adds, jobs that PostgreSQL says are queued or running but that
-- Redis has in none of its sets. Returns the ids concerned.
-- KEYS[1] ready, KEYS[2] scheduled, KEYS[3] lease, KEYS[4] rounds, KEYS[5] served.
-- ARGV[1]: lease (ms, from Redis's own clock) for rescued running jobs; ARGV[2]: 'check' or
-- 'add'; then
-- triples (kind, a, b):
--   'r', id, user|priority   a pending job (re-added in fair order)
--   's', member, run_at ms   a scheduled job (member "<id>|<user>|<priority>")
--   'l', id, ''              a running job: leased anew, so the reaper takes it back unless its
--                            worker is alive and renews the lease
-- A queued job counts as present when it is ready, scheduled or leased (claimed but not yet
-- recorded as running), so a job in flight is never queued twice.
local function id_of(kind, a)
  if kind == 's' then
    local sep = string.find(a, '|', 1, true)
    if sep then return string.sub(a, 1, sep - 1) end
  end
  return a
end

local function present(kind, a, id)
  if redis.call('ZSCORE', KEYS[3], id) then return true end
  if kind == 'l' then return false end
  if redis.call('ZSCORE', KEYS[1], id) then return true end
  return kind == 's' and redis.call('ZSCORE', KEYS[2], a) ~= false
end

local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local add = ARGV[2] == 'add'
local out = {}
local was_empty = redis.call('ZCARD', KEYS[1]) == 0
local readied = 0
for i = 3, #ARGV, 3 do
  local kind, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local id = id_of(kind, a)
  if not present(kind, a, id) then
    if add then
      if kind == 'r' then
        local user, priority = string.match(b, '^([^|]+)|([^|]+)$')
        redis.call('ZADD', KEYS[1], fair_score(KEYS[4], KEYS[5], user, priority), a)
        readied = readied + 1
      elseif kind == 's' then
        redis.call('ZADD', KEYS[2], b, a)
      else
        redis.call('ZADD', KEYS[3], deadline, a)
      end
    end
    out[#out + 1] = id
  end
end
wake_idle(KEYS[1], was_empty, readied)
return out
