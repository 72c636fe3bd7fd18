-- release, as Python's, plus the handover marker rqw's waiters look for.
-- KEYS: 1 rec_slots:{b}, 2 rec_inflight:{b}:{sid}, 3 rec_queue:{b}, 4 rec_queued:{b}
-- ARGV: 1 business, 2 sid, 3 inflight ttl, 4 max slots
-- Returns the call_sid the slot was handed to, or false.
-- rqw: a slot is handed over only while one is free (SCARD < max slots), so a repeat after a
-- lost reply (the slot already released, maybe handed over) hands nothing over twice;
-- Python's release pops unconditionally, which differs only when the slots are full anyway.
-- The holder's token (rec_waiter, kept by acquire and poll for a repeat) goes with the slot.
-- rec_slots was read by this call's acquire; a wait list or queued set of the wrong type
-- (never read before) must not stop the release halfway: the slot is freed regardless, and
-- such a list hands nothing over.
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2], 'rec_waiter:' .. ARGV[1] .. ':' .. ARGV[2])
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return false
end
local next_sid = redis.pcall('LPOP', KEYS[3])
if type(next_sid) == 'table' then next_sid = false end
if next_sid then
  redis.pcall('SREM', KEYS[4], next_sid)
  redis.call('SADD', KEYS[1], next_sid)
  redis.call('SETEX', 'rec_inflight:' .. ARGV[1] .. ':' .. next_sid, ARGV[3], 'processing')
  redis.call('SET', 'rec_handover:' .. ARGV[1] .. ':' .. next_sid, '1', 'EX', ARGV[3])
  return next_sid
end
return false
