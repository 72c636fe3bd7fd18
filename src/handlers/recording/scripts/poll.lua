-- poll: what a job that holds no slot for its call should do now.
-- KEYS: 1 rec_slots:{b}, 2 rec_inflight:{b}:{sid}, 3 rec_queued:{b}, 4 rec_queue:{b},
--       5 rec_waiter:{b}:{sid}, 6 rec_handover:{b}:{sid}
-- ARGV: 1 sid, 2 waiter token, 3 waiter ttl, 4 queued ttl, 5 inflight ttl
-- Returns {'queued', position}  this job waits in the queue (it is, or became, the waiter);
--         {'claimed', 0}        the slot handed to this call is now this job's;
--         {'other', 0}          another live job is waiting for or downloading this call;
--         {'free', 0}           nothing holds or waits for this call: acquire again.
local sid, token = ARGV[1], ARGV[2]
local holder = redis.call('GET', KEYS[5])
local mine = holder == token
local unowned = holder == false
if redis.call('SISMEMBER', KEYS[3], sid) == 1 then
  if mine or unowned then
    redis.call('SET', KEYS[5], token, 'EX', ARGV[3])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
    local position = redis.call('LPOS', KEYS[4], sid)
    if not position then
      position = redis.call('RPUSH', KEYS[4], sid) - 1
    end
    return {'queued', position + 1}
  end
  return {'other', 0}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local handed = redis.call('EXISTS', KEYS[6]) == 1
  if redis.call('SISMEMBER', KEYS[1], sid) == 1 and (mine or (unowned and handed)) then
    -- The token stays the holder's for a while, so a repeat after a lost reply claims again.
    redis.call('DEL', KEYS[6])
    redis.call('SET', KEYS[5], token, 'EX', ARGV[3])
    redis.call('SETEX', KEYS[2], ARGV[5], 'processing')
    return {'claimed', 0}
  end
  return {'other', 0}
end
if mine then
  redis.call('DEL', KEYS[5])
end
return {'free', 0}
