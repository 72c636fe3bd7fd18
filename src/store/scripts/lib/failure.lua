-- Library (after enqueue.lua and dependents.lua): what follows a failure once its status and
-- result entry are written (FailedJobRegistry.add, Job.cleanup, Result.save's TTL, then
-- Queue.enqueue_dependents). `failure_ttl` is the job's (nil = RQ's default of one year, and
-- a results stream without expiry); 0 deletes the job, -1 keeps it and its results; the
-- registry score is now + ttl, or the raw negative ttl, as RQ writes it.
-- Job.cleanup's EXPIREs are issued only where they can change something, with the same end
-- state: the job hash's unless the caller already applied this TTL to it (`hash_expired`,
-- finish.lua's existence check); the dependents set's only when it still exists after the
-- dependents were enqueued (RQ expires it first; the ids that stay keep that TTL either way);
-- the dependencies set's only when `has_dependencies` (rq_has_dependencies).
-- `dependents_absent`: the caller knows the job has no dependents set (finish.lua's one
-- EXISTS per batch), so none is looked for.
local RQ_DEFAULT_FAILURE_TTL = 31536000

local function rq_register_failure(P, id, q, failure_ttl, status, TS, NOW, default_timeout,
                                   has_dependencies, hash_expired, dependents_absent)
  local jk = P .. 'job:' .. id
  local results_key = P .. 'results:' .. id
  local ttl = failure_ttl or RQ_DEFAULT_FAILURE_TTL
  if failure_ttl ~= nil then
    if ttl == -1 then
      redis.call('PERSIST', results_key)
    elseif ttl >= 0 then
      redis.call('EXPIRE', results_key, ttl)
    end
  end
  if ttl == 0 then
    redis.call('DEL', jk, jk .. ':dependents', P .. 'job::' .. id .. ':dependencies')
  elseif ttl > 0 and not hash_expired then
    redis.call('EXPIRE', jk, ttl)
  end
  local score = ttl
  if ttl >= 0 then score = NOW + ttl end
  if rqw_failed(redis.pcall('ZADD', P .. 'failed:' .. q, score, id)) then
    rqw_notes[#rqw_notes + 1] = 'job ' .. id .. ' is in no registry: ' .. P .. 'failed:' .. q .. ' is not a sorted set'
  end
  if ttl ~= 0 then
    local dependents_left = not dependents_absent and rq_enqueue_dependents(P, id, status, TS, NOW, default_timeout)
    if ttl > 0 then
      if dependents_left then
        redis.call('EXPIRE', jk .. ':dependents', ttl)
      end
      if has_dependencies then
        redis.call('EXPIRE', P .. 'job::' .. id .. ':dependencies', ttl)
      end
    end
  end
end
