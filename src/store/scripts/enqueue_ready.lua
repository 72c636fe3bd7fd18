-- rq 3.0's ReadyJobRegistry.cleanup for one queue, atomically per call: dependents left in
-- rq:ready:<q> (their parent's worker died between the two phases of 3.0's dependents
-- handling) go onto their queue. Entries whose job is gone, or whose status is no longer
-- ready_to_enqueue, are only removed.
--
-- ARGV: 1 prefix, 2 queue, 3 now (rq timestamp), 4 now (int), 5 default timeout,
--       6 max jobs per call.
-- Returns {enqueued, dropped}; {enqueued, dropped, notes} when a key had the wrong type.
local P, Q, TS = ARGV[1], ARGV[2], ARGV[3]
local NOW = tonumber(ARGV[4])
local DEFAULT_TIMEOUT, LIMIT = ARGV[5], tonumber(ARGV[6])
local rk = P .. 'ready:' .. Q
local enqueued, dropped = 0, 0
for _, id in ipairs(redis.call('ZRANGE', rk, 0, LIMIT - 1)) do
  redis.call('ZREM', rk, id)
  -- A job key of the wrong type (issue 13) is only removed, like a missing one.
  local f = redis.pcall('HMGET', P .. 'job:' .. id, 'status', 'data')
  if rqw_failed(f) then
    rqw_notes[#rqw_notes + 1] = 'job ' .. id .. ' dropped from ' .. rk .. ': its key is not a hash'
    f = {}
  end
  if f[1] == 'ready_to_enqueue' and f[2] then
    rq_enqueue_job(P, id, Q, rq_should_enqueue_at_front(P, id), TS, NOW, DEFAULT_TIMEOUT)
    enqueued = enqueued + 1
  else
    dropped = dropped + 1
  end
end
if #rqw_notes > 0 then return {enqueued, dropped, table.concat(rqw_notes, '; ')} end
return {enqueued, dropped}
