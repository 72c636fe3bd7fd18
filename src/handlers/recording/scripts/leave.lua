-- leave: a waiting job is cancelled; take its call out of the wait list, or, when the slot
-- was handed to it meanwhile, claim it so that the caller releases it to the next waiter.
-- KEYS: 1 rec_slots:{b}, 2 rec_inflight:{b}:{sid}, 3 rec_queued:{b}, 4 rec_queue:{b},
--       5 rec_waiter:{b}:{sid}, 6 rec_handover:{b}:{sid}
-- ARGV: 1 sid, 2 waiter token, 3 waiter ttl
-- Returns 'left', 'handed' (caller must release) or 'not_waiting'.
local sid, token = ARGV[1], ARGV[2]
local holder = redis.call('GET', KEYS[5])
if holder ~= token and holder ~= false then
  return 'not_waiting'
end
if redis.call('SISMEMBER', KEYS[3], sid) == 1 then
  redis.call('SREM', KEYS[3], sid)
  -- A wait list of the wrong type (never read here) must not stop the leave halfway.
  redis.pcall('LREM', KEYS[4], 0, sid)
  redis.call('DEL', KEYS[5])
  return 'left'
end
local handed = redis.call('EXISTS', KEYS[6]) == 1
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('SISMEMBER', KEYS[1], sid) == 1
    and (holder == token or handed) then
  -- The token stays (release deletes it), so a repeat after a lost reply answers 'handed'
  -- again and the caller still releases the slot.
  redis.call('DEL', KEYS[6])
  redis.call('SET', KEYS[5], token, 'EX', ARGV[3])
  return 'handed'
end
if holder == token then
  redis.call('DEL', KEYS[5])
end
return 'not_waiting'
