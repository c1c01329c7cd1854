-- Claims up to ARGV[1] ready jobs, best first across every type that may start now, and leases
-- them for ARGV[2] ms from Redis's own clock, atomically: two workers never take the same job,
-- and no worker's clock decides a lease. Advances the round served at each priority taken.
-- KEYS[1] lease, KEYS[2] served, KEYS[3] leased (job -> type), KEYS[4] paused.
-- ARGV[3] the key stem; ARGV[4] '1' to honour pauses; then triples (type, concurrency, rate
-- per second) for every job type (0: no such limit).
-- A type is skipped while paused, while "<stem>running:<type>" holds as many live leases as its
-- concurrency, or while "<stem>starts:<type>" holds as many starts in the last 1000 ms as its
-- rate. The running counts are the live leases themselves (a dead worker's lapse with its
-- lease), so they cannot leak. A type skipped for its concurrency gets "<stem>blocked:<type>",
-- so that whoever frees one of its slots wakes idle workers.
-- Returns {hint, ids...}: hint is 'sync' when the pause mirror is missing (nothing claimed: the
-- caller writes it from PostgreSQL and claims again), else the milliseconds until a
-- rate-limited type with ready jobs may start again ('-1': none).
local stem = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[2])
local honour_pause = ARGV[4] == '1'
if honour_pause and redis.call('HEXISTS', KEYS[4], '_v') == 0 then
  return {'sync'}
end
local max = tonumber(ARGV[1])

local wait = -1
local heads = {}
for i = 5, #ARGV, 3 do
  local job_type = ARGV[i]
  local limit = {tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])}
  local ready = ready_key(stem, job_type)
  if redis.call('EXISTS', ready) == 1
    and not (honour_pause and redis.call('HEXISTS', KEYS[4], job_type) == 1) then
    local room = max
    if limit[1] > 0 then
      local running = redis.call('ZCOUNT', stem .. 'running:' .. job_type, '(' .. string.format('%.0f', now), '+inf')
      if running >= limit[1] then
        redis.call('SET', stem .. 'blocked:' .. job_type, '1')
      end
      room = math.min(room, limit[1] - running)
    end
    if limit[2] > 0 and room > 0 then
      local starts = stem .. 'starts:' .. job_type
      redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - 1000)
      local started = redis.call('ZCARD', starts)
      if started >= limit[2] then
        local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
        local free_in = math.max(1, tonumber(oldest[2]) + 1000 - now)
        if wait < 0 or free_in < wait then
          wait = free_in
        end
      end
      room = math.min(room, limit[2] - started)
    end
    if room > 0 then
      local items = redis.call('ZRANGE', ready, 0, room - 1, 'WITHSCORES')
      heads[#heads + 1] = {job_type = job_type, key = ready, items = items, pos = 1, taken = 0,
        rated = limit[2] > 0}
    end
  end
end

-- Merges the heads: lowest score first, equal scores in member order (as one sorted set would).
local ids = {}
local reached = {}
while #ids < max do
  local best, best_score, best_id = nil, nil, nil
  for _, head in ipairs(heads) do
    if head.pos <= #head.items then
      local id = head.items[head.pos]
      local score = tonumber(head.items[head.pos + 1])
      if not best or score < best_score or (score == best_score and id < best_id) then
        best, best_score, best_id = head, score, id
      end
    end
  end
  if not best then
    break
  end
  best.pos = best.pos + 2
  best.taken = best.taken + 1
  ids[#ids + 1] = best_id
  redis.call('ZADD', KEYS[1], deadline, best_id)
  redis.call('ZADD', stem .. 'running:' .. best.job_type, deadline, best_id)
  redis.call('HSET', KEYS[3], best_id, best.job_type)
  if best.rated then
    redis.call('ZADD', stem .. 'starts:' .. best.job_type, now, best_id)
  end
  local band = math.floor(best_score / BAND)
  reached[band] = best_score - band * BAND
end
for _, head in ipairs(heads) do
  if head.taken > 0 then
    redis.call('ZPOPMIN', head.key, head.taken)
  end
end
for band, round in pairs(reached) do
  local served = tonumber(redis.call('HGET', KEYS[2], band))
  if not served or round > served then
    redis.call('HSET', KEYS[2], band, string.format('%.0f', round))
  end
end
table.insert(ids, 1, string.format('%.0f', wait))
return ids
