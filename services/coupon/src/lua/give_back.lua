-- Gives a slot back after the Kafka write failed: removes the user's mark only if it is still this
-- request's pending mark, which frees the slot (the count is the size of the holders hash).
--
-- KEYS[1]  holders hash
-- ARGV[1]  user id
-- ARGV[2]  request id
--
-- Returns 1 given back, 2 not given back because the worker already confirmed this request (the
-- write reached Kafka after all: the coupon stands), 0 nothing held for this request.
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
if v == 'c:' .. ARGV[2] then
  return 2
end
return 0
