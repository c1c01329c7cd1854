-- Publishes many events in one command: ARGV holds (channel, message) pairs, published in
-- that order. Returns how many were published.
for i = 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
