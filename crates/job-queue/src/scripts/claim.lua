-- Pops up to ARGV[1] ready jobs (highest priority, then by round, then oldest first) and leases
-- them for ARGV[2] ms from Redis's own clock, atomically: two workers never pop the same job,
-- and no worker's clock decides a lease. Advances the round served at each priority popped.
-- KEYS[1] ready, KEYS[2] lease, KEYS[3] served.
local BAND = 4398046511104 -- 2^42
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local ids = {}
local reached = {}
for i = 1, #popped, 2 do
  ids[#ids + 1] = popped[i]
  redis.call('ZADD', KEYS[2], deadline, popped[i])
  local score = tonumber(popped[i + 1])
  local band = math.floor(score / BAND)
  reached[band] = score - band * BAND
end
for band, round in pairs(reached) do
  local served = tonumber(redis.call('HGET', KEYS[3], band))
  if not served or round > served then
    redis.call('HSET', KEYS[3], band, string.format('%.0f', round))
  end
end
return ids
