-- RQScheduler.enqueue_scheduled_jobs for one queue, atomically: the jobs of
-- rq:scheduled:<q> whose time has come go onto their queue (front per should_enqueue_at_front)
-- and leave the registry. Ids whose hash is gone (or has no data) only leave the registry.
-- Nothing moves unless the queue's scheduler lock still holds our name, so two schedulers
-- can never move the same job.
--
-- ARGV: 1 prefix, 2 queue, 3 now (rq timestamp), 4 now (int), 5 default timeout,
--       6 max jobs per call, 7 lock key, 8 lock owner.
-- Returns {moved, dropped}, or -1 when the lock is not ours; {moved, dropped, notes} when a
-- key had the wrong type (logged by the caller).
local P, Q, TS = ARGV[1], ARGV[2], ARGV[3]
local NOW = tonumber(ARGV[4])
local DEFAULT_TIMEOUT, LIMIT = ARGV[5], tonumber(ARGV[6])
if redis.call('GET', ARGV[7]) ~= ARGV[8] then
  return -1
end
local sk = P .. 'scheduled:' .. Q
local moved, dropped = 0, 0
-- A job key or queue of the wrong type (issue 13) is found out by reads and by the push,
-- through redis.pcall, before the job's first write, and the other due jobs move: an id whose
-- key is not a hash is no job and leaves the registry (counted as dropped); a job whose queue
-- key is not a list stays scheduled, untouched.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', sk, 0, NOW, 'LIMIT', 0, LIMIT)) do
  local has_data = redis.pcall('HEXISTS', P .. 'job:' .. id, 'data')
  if rqw_failed(has_data) then
    redis.call('ZREM', sk, id)
    rqw_notes[#rqw_notes + 1] = 'job ' .. id .. ' dropped from ' .. sk .. ': its key is not a hash'
    dropped = dropped + 1
  elseif has_data == 1 then
    if rq_enqueue_job(P, id, Q, rq_should_enqueue_at_front(P, id), TS, NOW, DEFAULT_TIMEOUT) ~= 'unusable' then
      redis.call('ZREM', sk, id)
      moved = moved + 1
    end
  else
    redis.call('ZREM', sk, id)
    dropped = dropped + 1
  end
end
if #rqw_notes > 0 then return {moved, dropped, table.concat(rqw_notes, '; ')} end
return {moved, dropped}
