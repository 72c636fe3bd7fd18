-- worker_registration.clean_worker_registry for one queue, atomically: worker keys listed in
-- rq:workers:<q> whose hash no longer exists (the worker died without deregistering) leave
-- rq:workers:<q> and rq:workers.
--
-- ARGV: 1 prefix, 2 queue.
-- Returns the number of dead worker keys removed.
local P, Q = ARGV[1], ARGV[2]
local by_queue = P .. 'workers:' .. Q
local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', by_queue)) do
  if redis.call('EXISTS', key) == 0 then
    redis.call('SREM', by_queue, key)
    redis.call('SREM', P .. 'workers', key)
    removed = removed + 1
  end
end
return removed
