-- Library (after enqueue.lua and dependents.lua): what follows a failure once its status and
-- result entry are written (FailedJobRegistry.add, Job.cleanup, Result.save's TTL, then
-- Queue.enqueue_dependents). `failure_ttl` is the job's (nil = RQ's default of one year, and
-- a results stream without expiry); 0 deletes the job, -1 keeps it and its results; the
-- registry score is now + ttl, or the raw negative ttl, as RQ writes it.
local function rq_register_failure(P, id, q, failure_ttl, status, TS, NOW, default_timeout)
  local jk = P .. 'job:' .. id
  local results_key = P .. 'results:' .. id
  local ttl = failure_ttl or 31536000
  if failure_ttl ~= nil then
    if ttl == -1 then
      redis.call('PERSIST', results_key)
    elseif ttl >= 0 then
      redis.call('EXPIRE', results_key, ttl)
    end
  end
  if ttl == 0 then
    redis.call('DEL', jk, jk .. ':dependents', P .. 'job::' .. id .. ':dependencies')
  elseif ttl > 0 then
    redis.call('EXPIRE', jk, ttl)
    redis.call('EXPIRE', jk .. ':dependents', ttl)
    redis.call('EXPIRE', P .. 'job::' .. id .. ':dependencies', ttl)
  end
  local score = ttl
  if ttl >= 0 then score = NOW + ttl end
  redis.call('ZADD', P .. 'failed:' .. q, score, id)
  if ttl ~= 0 then
    rq_enqueue_dependents(P, id, status, TS, NOW, default_timeout)
  end
end
