-- The issue decision, atomic: event window, one coupon per user, count against the limit.
--
-- KEYS[1]  event metadata hash {limit, start, end} (ms since the epoch)
-- KEYS[2]  holders hash: user id -> request id ("<id>" pending Kafka, "c:<id>" confirmed by the worker)
-- ARGV[1]  user id
-- ARGV[2]  request id (becomes the coupon id)
-- ARGV[3]  retention: keys expire this many ms after the event's end
-- Reload (only when the metadata is missing, e.g. Redis was flushed), from MySQL:
-- ARGV[4]  limit, ARGV[5] start ms, ARGV[6] end ms,
-- ARGV[7]  n: how many pairs follow that MySQL already holds,
-- ARGV[8..] n pairs (user id, coupon id) of coupons MySQL holds (written confirmed), then pairs
--          of requests acknowledged by Kafka that the worker has not stored yet (written pending;
--          the worker claims them as usual). A user's first pair wins.
--
-- Returns {code, issued}: 0 issued, 1 already issued, 2 not started, 3 ended, 4 sold out,
-- -1 metadata missing (nothing was written; the caller reloads it from MySQL or answers 404).
-- The clock is Redis's own (TIME), so every API replica decides on the same time.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[3])
local m = redis.call('HMGET', KEYS[1], 'limit', 'start', 'end')
local limit, start, stop = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
if not limit or not start or not stop then
  if #ARGV < 7 then
    return {-1, 0}
  end
  limit, start, stop = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  if now >= stop then
    -- Over: nothing worth keeping, nothing written.
    return {3, 0}
  end
  local expire_at = stop + retention
  redis.call('HSET', KEYS[1], 'limit', limit, 'start', start, 'end', stop)
  redis.call('PEXPIREAT', KEYS[1], expire_at)
  local pending_from = 8 + 2 * tonumber(ARGV[7])
  for i = 8, pending_from - 1, 2 do
    redis.call('HSETNX', KEYS[2], ARGV[i], 'c:' .. ARGV[i + 1])
  end
  for i = pending_from, #ARGV - 1, 2 do
    redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIREAT', KEYS[2], expire_at)
  end
end
if now < start then
  return {2, 0}
end
if now >= stop then
  return {3, 0}
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {1, 0}
end
local n = redis.call('HLEN', KEYS[2])
if n >= limit then
  return {4, n}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if n == 0 then
  redis.call('PEXPIREAT', KEYS[2], stop + retention)
end
return {0, n + 1}
