-- Library: whether a job's dependencies set (rq:job::<id>:dependencies) can exist, from its
-- hash's dependency_ids and legacy dependency_id fields. RQ adds to that set only in
-- Job.register_dependency, for the ids in Job._dependency_ids, and Job.to_dict writes both
-- fields whenever that list is non-empty (rq 2.0.0, 2.12, 3.0): a job without them has no
-- dependencies set, so an EXPIRE of it can be skipped (it would answer 0 and change nothing).
local function rq_has_dependencies(dependency_ids, dependency_id)
  return (dependency_ids and dependency_ids ~= '') or (dependency_id and dependency_id ~= '') or false
end

-- Library: rq 3.0's ACQUIRE_AND_ENQUEUE_SCRIPT: fill free slots of a rate limit with waiting
-- jobs, oldest first (each added to allowed, pushed onto its queue, marked queued).
local function rq_promote_rate_limited(P, rl_key, concurrency, TS, NOW)
  local rl = P .. 'rl:' .. rl_key
  while redis.call('ZCARD', rl .. ':allowed') < concurrency do
    local popped = redis.call('ZPOPMIN', rl .. ':rate_limited')
    if #popped == 0 then break end
    local wid = popped[1]
    local wjk = P .. 'job:' .. wid
    local w = redis.call('HMGET', wjk, 'origin', 'status', 'enqueue_at_front')
    if w[1] and w[2] == 'rate_limited' then
      redis.call('ZADD', rl .. ':allowed', NOW, wid)
      if w[3] == '1' then
        redis.call('LPUSH', P .. 'queue:' .. w[1], wid)
      else
        redis.call('RPUSH', P .. 'queue:' .. w[1], wid)
      end
      redis.call('HSET', wjk, 'status', 'queued', 'enqueued_at', TS)
    end
  end
end

-- rq 3.0's release_slot (RELEASE_AND_ENQUEUE_SCRIPT) for a job whose outcome is final: its
-- slot is freed and waiting jobs promoted. No-op for a job without a rate limit.
local function rq_release_rate_limit(P, id, rl_key, TS, NOW)
  if not rl_key or rl_key == '' then return end
  local rl = P .. 'rl:' .. rl_key
  redis.call('ZREM', rl .. ':allowed', id)
  local concurrency = tonumber(redis.call('HGET', rl, 'concurrency'))
  if concurrency then
    rq_promote_rate_limited(P, rl_key, concurrency, TS, NOW)
  end
end

-- Library, prepended to the scripts that put a job on its queue (finish.lua's dependents,
-- the scheduler, retries of recovered jobs, ready jobs). RQ's Queue._enqueue_job for a job whose hash exists:
--   status queued, origin, enqueued_at; the queue's default timeout when the job has none;
--   the job's ttl re-applied (Job.cleanup: EXPIRE of the hash and its dependents set, and of
--   its dependencies set when it can exist, see rq_has_dependencies);
--   RPUSH, or LPUSH when at_front.
-- Only those fields are written (RQ re-saves the whole mapping with identical values).
-- A job with an rq 3.0 rate limit (rate_limit_key + rate_limit_concurrency) goes through the
-- limiter instead, as Queue._enqueue_rate_limited_job + ACQUIRE_AND_ENQUEUE_SCRIPT do.
-- Returns 'queued' or 'rate_limited'.
local function rq_enqueue_job(P, id, q, at_front, TS, NOW, default_timeout)
  local jk = P .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'status', 'timeout', 'ttl', 'rate_limit_key', 'rate_limit_concurrency',
    'dependency_ids', 'dependency_id')
  if f[1] == 'deferred' then
    redis.call('ZREM', P .. 'deferred:' .. q, id)
  end
  if not f[2] or f[2] == '' then
    redis.call('HSET', jk, 'timeout', default_timeout)
  end
  local ttl = tonumber(f[3] or '')
  if ttl and ttl > 0 then
    redis.call('EXPIRE', jk, ttl)
    redis.call('EXPIRE', jk .. ':dependents', ttl)
    if rq_has_dependencies(f[6], f[7]) then
      redis.call('EXPIRE', P .. 'job::' .. id .. ':dependencies', ttl)
    end
  end
  local rl_key, concurrency = f[4], tonumber(f[5] or '')
  if rl_key and rl_key ~= '' and concurrency and concurrency > 0 then
    local rl = P .. 'rl:' .. rl_key
    redis.call('SADD', P .. 'rl-keys', rl_key)
    redis.call('HSET', rl, 'concurrency', concurrency)
    redis.call('HSET', jk, 'status', 'rate_limited', 'origin', q)
    if at_front then
      redis.call('HSET', jk, 'enqueue_at_front', '1')
    end
    redis.call('ZADD', rl .. ':rate_limited', NOW, id)
    rq_promote_rate_limited(P, rl_key, concurrency, TS, NOW)
    return 'rate_limited'
  end
  redis.call('HSET', jk, 'status', 'queued', 'origin', q, 'enqueued_at', TS)
  if at_front then
    redis.call('LPUSH', P .. 'queue:' .. q, id)
  else
    redis.call('RPUSH', P .. 'queue:' .. q, id)
  end
  return 'queued'
end

-- Job.should_enqueue_at_front (2.12+): enqueue_at_front_on_retry once the job has run
-- (ended_at set), else enqueue_at_front. 2.0.0 only has enqueue_at_front, and never writes
-- enqueue_at_front_on_retry, so this reads its jobs the way 2.0.0 does.
local function rq_should_enqueue_at_front(P, id)
  local f = redis.call('HMGET', P .. 'job:' .. id, 'enqueue_at_front', 'enqueue_at_front_on_retry', 'ended_at')
  if f[2] == '1' and f[3] and f[3] ~= '' then
    return true
  end
  return f[1] == '1'
end
