-- acquire (runs after cleanup.lua, in the same script), as Python's:
-- KEYS: 1 rec_slots:{b}, 2 rec_inflight:{b}:{sid}, 3 rec_queued:{b}, 4 rec_queue:{b},
--       5 rec_waiter:{b}:{sid}
-- ARGV: 1 business, 2 sid, 3 max slots, 4 inflight ttl, 5 queued ttl, 6 waiter token,
--       7 waiter ttl
-- Returns {status, queue position (1-based) or 0}.
local sid = ARGV[2]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'inflight', 0}
end
if redis.call('SISMEMBER', KEYS[3], sid) == 1 then
  return {'already_queued', 0}
end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[1], sid)
  redis.call('SETEX', KEYS[2], ARGV[4], 'processing')
  -- rqw: the holder's token, so that a job whose reply was lost finds its own slot (poll
  -- answers 'claimed' to the token's holder) instead of waiting for "another job".
  redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[7])
  return {'acquired', 0}
end
-- The wait list's RPUSH first: it is the one write on a key whose type nothing above read
-- (rec_slots and rec_queued were read), so a WRONGTYPE stops the script before any write.
local position = redis.call('RPUSH', KEYS[4], sid)
redis.call('SADD', KEYS[3], sid)
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[7])
return {'queued', position}
