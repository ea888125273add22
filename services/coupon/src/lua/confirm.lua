-- The worker claims requests before inserting them, so a request whose slot was given back is
-- never inserted, and a confirmed request is never given back.
--
-- KEYS[1]  event metadata hash
-- KEYS[2]  holders hash
-- ARGV     pairs (user id, request id)
--
-- Returns one code per pair: 1 insert (now confirmed), 0 skip (given back or superseded),
-- 2 unknown (Redis holds nothing for this event, e.g. flushed: insert and let MySQL's unique key
-- decide).
local has_meta = redis.call('EXISTS', KEYS[1]) == 1
local out = {}
for i = 1, #ARGV - 1, 2 do
  local user, req = ARGV[i], ARGV[i + 1]
  local v = redis.call('HGET', KEYS[2], user)
  if v == req or v == 'c:' .. req then
    redis.call('HSET', KEYS[2], user, 'c:' .. req)
    out[#out + 1] = 1
  elseif not v and not has_meta then
    out[#out + 1] = 2
  else
    out[#out + 1] = 0
  end
end
return out
