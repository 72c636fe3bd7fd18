-- Hostile keys (issue 13): a producer can give the job key or the target queue another type.
-- Redis does not roll back a failed script, so both are found out before this job's first
-- write: the HMGET reads the hash (redis.pcall), and the push onto the queue *is* the first
-- write (redis.pcall; it fails alone). Either failure returns 'unusable' having written
-- nothing, and adds a note to rqw_notes (the callers report them). No command is added.
local rqw_notes = {}

-- True when a redis.pcall reply is an error.
local function rqw_failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

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
  -- Keys named by the rate limit and the waiting jobs go through redis.pcall (issue 13): a
  -- key of the wrong type stops the promotion (a note says why), not the script.
  while true do
    local allowed = redis.pcall('ZCARD', rl .. ':allowed')
    if rqw_failed(allowed) or allowed >= concurrency then break end
    local popped = redis.pcall('ZPOPMIN', rl .. ':rate_limited')
    if rqw_failed(popped) then
      rqw_notes[#rqw_notes + 1] = rl .. ':rate_limited is not a sorted set: nothing promoted'
      break
    end
    if #popped == 0 then break end
    local wid = popped[1]
    local wjk = P .. 'job:' .. wid
    local w = redis.pcall('HMGET', wjk, 'origin', 'status', 'enqueue_at_front')
    if rqw_failed(w) then
      rqw_notes[#rqw_notes + 1] = 'rate-limited job ' .. wid .. ' dropped: its key is not a hash'
    elseif w[1] and w[2] == 'rate_limited' then
      local pushed
      if w[3] == '1' then
        pushed = redis.pcall('LPUSH', P .. 'queue:' .. w[1], wid)
      else
        pushed = redis.pcall('RPUSH', P .. 'queue:' .. w[1], wid)
      end
      if rqw_failed(pushed) then
        redis.call('ZADD', rl .. ':rate_limited', popped[2], wid)
        rqw_notes[#rqw_notes + 1] = 'rate-limited job ' .. wid .. ' left waiting: ' .. P .. 'queue:' .. w[1] .. ' is not a list'
        break
      end
      redis.call('ZADD', rl .. ':allowed', NOW, wid)
      redis.call('HSET', wjk, 'status', 'queued', 'enqueued_at', TS)
    end
  end
end

-- rq 3.0's release_slot (RELEASE_AND_ENQUEUE_SCRIPT) for a job whose outcome is final: its
-- slot is freed and waiting jobs promoted. No-op for a job without a rate limit.
local function rq_release_rate_limit(P, id, rl_key, TS, NOW)
  if not rl_key or rl_key == '' then return end
  local rl = P .. 'rl:' .. rl_key
  if rqw_failed(redis.pcall('ZREM', rl .. ':allowed', id)) then
    rqw_notes[#rqw_notes + 1] = 'rate limit ' .. rl .. ' unusable (a key of the wrong type): slot not released'
    return
  end
  local concurrency = redis.pcall('HGET', rl, 'concurrency')
  if rqw_failed(concurrency) then return end
  concurrency = tonumber(concurrency)
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
-- Returns 'queued', 'rate_limited', or 'unusable' (nothing written; see below).
local function rq_enqueue_job(P, id, q, at_front, TS, NOW, default_timeout)
  local jk = P .. 'job:' .. id
  local f = redis.pcall('HMGET', jk, 'status', 'timeout', 'ttl', 'rate_limit_key', 'rate_limit_concurrency',
    'dependency_ids', 'dependency_id')
  if rqw_failed(f) then
    rqw_notes[#rqw_notes + 1] = 'job ' .. id .. ' not enqueued: its key is not a hash'
    return 'unusable'
  end
  local rl_key, concurrency = f[4], tonumber(f[5] or '')
  local limited = rl_key and rl_key ~= '' and concurrency and concurrency > 0
  if not limited then
    local pushed
    if at_front then
      pushed = redis.pcall('LPUSH', P .. 'queue:' .. q, id)
    else
      pushed = redis.pcall('RPUSH', P .. 'queue:' .. q, id)
    end
    if rqw_failed(pushed) then
      rqw_notes[#rqw_notes + 1] = 'job ' .. id .. ' not enqueued: ' .. P .. 'queue:' .. q .. ' is not a list'
      return 'unusable'
    end
  end
  if f[1] == 'deferred' then
    redis.pcall('ZREM', P .. 'deferred:' .. q, id)
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
  if limited then
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
