-- Before a password is checked, in one round trip: counts the request against the client's
-- per-IP budget (unless ARGV[1] is 0) and works out how long this client must still wait
-- before it may try this account again.
-- KEYS[1]: the per-IP counter. KEYS[2]: the account's failure hash, with a field per client
-- (<client>: its failures; <client>:t: when its latest failure was, in ms) and _total (failures
-- from anyone).
-- ARGV[1]: IP window in ms (0: do not count); ARGV[2]: the client; ARGV[3]: failures a client
-- may make before it has to wait, and the account-wide failures after which every client
-- waits after each of its own failures; ARGV[4]: first wait in ms; ARGV[5]: longest wait in ms.
-- Returns {IP count, ms until the IP window resets, this client's failures, ms it must wait}.
local count, ttl = 0, 0
if tonumber(ARGV[1]) > 0 then
  count = redis.call('INCR', KEYS[1])
  if count == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
  end
end
local failures = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local wait = 0
if failures > 0 then
  local free = tonumber(ARGV[3])
  if tonumber(redis.call('HGET', KEYS[2], '_total') or '0') >= free then
    -- The account is under attack: clients that failed on it wait after each failure.
    free = 1
  end
  if failures >= free then
    local delay = math.min(tonumber(ARGV[4]) * 2 ^ (failures - free), tonumber(ARGV[5]))
    local last = tonumber(redis.call('HGET', KEYS[2], ARGV[2] .. ':t') or '0')
    local now = redis.call('TIME')
    local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    wait = math.max(0, math.floor(delay - (now_ms - last)))
  end
end
return {count, ttl, failures, wait}
