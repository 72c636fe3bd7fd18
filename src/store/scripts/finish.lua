-- Records the outcome of one execution, atomically, as RQ's worker does in its
-- handle_job_success / handle_job_failure transactions: ends the execution (execution hash,
-- StartedJobRegistry member, executions zset, worker executions set, current_job, state),
-- updates the worker's counters, then per MODE:
--   finished  status finished, result entry, FinishedJobRegistry, result_ttl (0 deletes, -1 keeps)
--   failed    status failed, result entry (type 2), FailedJobRegistry, failure_ttl
--   stopped   as failed with status stopped
--   requeue   retry now: status queued, retries_left, back on the queue (front if asked)
--   schedule  retry later: status scheduled, ScheduledJobRegistry
--   forward   not run here: status queued, origin and queue = ARGV[13] (no counters)
-- and enqueues dependents whose dependencies are now met (2.x style: straight to their queue),
-- repeats a job that has repeats left (2.12+ Repeat), and releases its rq 3.0 rate-limit slot.
--
-- ARGV: 1 prefix, 2 worker name, 3 job id, 4 execution id, 5 queue (job origin),
--       6 now (rq timestamp), 7 now (int), 8 mode, 9 ttl ('' = unset), 10 working time (float),
--       11 worker counter field ('' = none), 12 retries_left after this attempt (requeue,
--       schedule) or repeats_left after this run ('' = no repeat) for finished,
--       13 at_front ('1'/'0') for requeue, run-at (int) for schedule and for a repeat ('0' =
--       now), target queue for forward, 14.. result entry field/value pairs.
-- Returns 1; 0 when the job hash no longer exists (nothing written for the job); 2 when the
-- execution was not in the StartedJobRegistry any more (nothing written).
local P, NAME, ID, X, Q, TS = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local NOW = tonumber(ARGV[7])
local MODE, TTL, WT, COUNTER = ARGV[8], ARGV[9], ARGV[10], ARGV[11]

local jk = P .. 'job:' .. ID
local dependents_key = jk .. ':dependents'
local dependencies_key = P .. 'job::' .. ID .. ':dependencies'
local results_key = P .. 'results:' .. ID
local wk = P .. 'worker:' .. NAME
local wek = wk .. ':executions'
local composite = ID .. ':' .. X

-- The execution is over. If it was no longer in the StartedJobRegistry, its outcome was
-- already recorded (a retried call whose reply was lost) or RQ's abandoned-job cleanup took
-- it over: write nothing more, so nothing is counted or enqueued twice.
local was_started = redis.call('ZREM', P .. 'wip:' .. Q, composite)
redis.call('DEL', P .. 'execution:' .. ID .. ':' .. X)
redis.call('ZREM', P .. 'executions:' .. ID, X)
redis.call('SREM', wek, composite)
if was_started == 0 then
  return 2
end

-- Worker bookkeeping.
if redis.call('EXISTS', wk) == 1 then
  if COUNTER ~= '' then
    redis.call('HINCRBY', wk, COUNTER, 1)
    redis.call('HINCRBYFLOAT', wk, 'total_working_time', WT)
  end
  local other = redis.call('SRANDMEMBER', wek)
  if other then
    if redis.call('HGET', wk, 'current_job') == ID then
      redis.call('HSET', wk, 'current_job', string.match(other, '^(.*):[^:]*$'))
    end
  else
    redis.call('HDEL', wk, 'current_job')
    redis.call('HSET', wk, 'state', 'idle', 'current_job_working_time', '0')
  end
end

if redis.call('EXISTS', jk) == 0 then
  return 0
end

local function add_result()
  if #ARGV >= 14 then
    redis.call('XADD', results_key, 'MAXLEN', '~', '10', '*', unpack(ARGV, 14))
  end
end

-- Queue.enqueue_dependents + Job.dependencies_are_met.
local function enqueue_dependents(parent_status)
  local dependents = redis.call('SMEMBERS', dependents_key)
  if #dependents == 0 then return end
  local enqueued = {}
  for _, dep in ipairs(dependents) do
    local djk = P .. 'job:' .. dep
    local info = redis.call('HMGET', djk, 'status', 'origin', 'enqueue_at_front', 'allow_dependency_failures', 'data')
    local allow_failures = info[4] == '1'
    local ok = info[5] and info[2] and info[1] ~= 'canceled'
    if ok and parent_status ~= 'finished' then
      ok = parent_status == 'failed' and allow_failures
    end
    if ok then
      for _, parent in ipairs(redis.call('SMEMBERS', P .. 'job::' .. dep .. ':dependencies')) do
        if parent ~= ID then
          local status = redis.call('HGET', P .. 'job:' .. parent, 'status')
          if status and not (status == 'finished' or (allow_failures and status == 'failed')) then
            ok = false
            break
          end
        end
      end
    end
    if ok then
      local origin = info[2]
      redis.call('ZREM', P .. 'deferred:' .. origin, dep)
      redis.call('HSET', djk, 'status', 'queued', 'enqueued_at', TS)
      if info[3] == '1' then
        redis.call('LPUSH', P .. 'queue:' .. origin, dep)
      else
        redis.call('RPUSH', P .. 'queue:' .. origin, dep)
      end
      enqueued[#enqueued + 1] = dep
    end
  end
  if #enqueued == #dependents then
    redis.call('DEL', dependents_key)
  elseif #enqueued > 0 then
    redis.call('SREM', dependents_key, unpack(enqueued))
  end
end

-- rq 3.0 rate limits (rate_limit.release_slot): once the outcome is final (not queued or
-- started), free the job's slot and promote waiting jobs, oldest first.
local rate_limit_key = redis.call('HGET', jk, 'rate_limit_key')
local function release_rate_limit(status)
  if status == 'queued' or status == 'started' or not rate_limit_key or rate_limit_key == '' then
    return
  end
  local base = P .. 'rl:' .. rate_limit_key
  local allowed, waiting = base .. ':allowed', base .. ':rate_limited'
  redis.call('ZREM', allowed, ID)
  local concurrency = tonumber(redis.call('HGET', base, 'concurrency'))
  if not concurrency then return end
  while redis.call('ZCARD', allowed) < concurrency do
    local popped = redis.call('ZPOPMIN', waiting)
    if #popped == 0 then break end
    local wid = popped[1]
    local wjk = P .. 'job:' .. wid
    local f = redis.call('HMGET', wjk, 'origin', 'status', 'enqueue_at_front')
    if f[1] and f[2] == 'rate_limited' then
      redis.call('ZADD', allowed, NOW, wid)
      if f[3] == '1' then
        redis.call('LPUSH', P .. 'queue:' .. f[1], wid)
      else
        redis.call('RPUSH', P .. 'queue:' .. f[1], wid)
      end
      redis.call('HSET', wjk, 'status', 'queued', 'enqueued_at', TS)
    end
  end
end

local final_status = MODE
if MODE == 'finished' then
  local ttl = tonumber(TTL)
  local repeating = ARGV[12] ~= ''
  enqueue_dependents('finished')
  if ttl == 0 and not repeating then
    redis.call('DEL', P .. 'executions:' .. ID, jk, dependents_key, dependencies_key, results_key)
    release_rate_limit(final_status)
    return 1
  end
  if ttl ~= 0 then
    redis.call('HSET', jk, 'status', 'finished', 'ended_at', TS, 'last_heartbeat', TS)
    add_result()
    if ttl > 0 then
      redis.call('EXPIRE', results_key, ttl)
      redis.call('ZADD', P .. 'finished:' .. Q, NOW + ttl, ID)
      if not repeating then
        redis.call('EXPIRE', jk, ttl)
        redis.call('EXPIRE', dependents_key, ttl)
        redis.call('EXPIRE', dependencies_key, ttl)
      end
    else
      redis.call('PERSIST', results_key)
      redis.call('ZADD', P .. 'finished:' .. Q, '+inf', ID)
    end
  end
  if repeating then
    -- Repeat.schedule: one repeat fewer, then straight back on the queue or scheduled.
    redis.call('HSET', jk, 'repeats_left', ARGV[12])
    if ARGV[13] == '0' then
      final_status = 'queued'
      redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', TS)
      redis.call('RPUSH', P .. 'queue:' .. Q, ID)
    else
      final_status = 'scheduled'
      redis.call('HSET', jk, 'status', 'scheduled')
      redis.call('ZADD', P .. 'scheduled:' .. Q, ARGV[13], ID)
      redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
    end
  end
elseif MODE == 'failed' or MODE == 'stopped' then
  local ttl = 31536000
  if TTL ~= '' then ttl = tonumber(TTL) end
  redis.call('HSET', jk, 'status', MODE, 'ended_at', TS, 'last_heartbeat', TS)
  add_result()
  if TTL ~= '' then
    if ttl == -1 then
      redis.call('PERSIST', results_key)
    elseif ttl >= 0 then
      redis.call('EXPIRE', results_key, ttl)
    end
  end
  if ttl == 0 then
    redis.call('DEL', jk, dependents_key, dependencies_key)
  elseif ttl > 0 then
    redis.call('EXPIRE', jk, ttl)
    redis.call('EXPIRE', dependents_key, ttl)
    redis.call('EXPIRE', dependencies_key, ttl)
  end
  local score = ttl
  if ttl >= 0 then score = NOW + ttl end
  redis.call('ZADD', P .. 'failed:' .. Q, score, ID)
  if ttl ~= 0 then enqueue_dependents(MODE) end
elseif MODE == 'requeue' then
  final_status = 'queued'
  redis.call('HSET', jk, 'status', 'queued', 'retries_left', ARGV[12], 'enqueued_at', TS, 'ended_at', TS, 'last_heartbeat', TS)
  if ARGV[13] == '1' then
    redis.call('LPUSH', P .. 'queue:' .. Q, ID)
  else
    redis.call('RPUSH', P .. 'queue:' .. Q, ID)
  end
elseif MODE == 'forward' then
  final_status = 'queued'
  -- Not ours to run: hand the job, intact, to the queue a Python worker serves.
  local target = ARGV[13]
  redis.call('HSET', jk, 'status', 'queued', 'origin', target, 'enqueued_at', TS, 'started_at', '', 'worker_name', '', 'last_heartbeat', '')
  redis.call('RPUSH', P .. 'queue:' .. target, ID)
  redis.call('SADD', P .. 'queues', P .. 'queue:' .. target)
elseif MODE == 'schedule' then
  final_status = 'scheduled'
  redis.call('HSET', jk, 'status', 'scheduled', 'retries_left', ARGV[12], 'ended_at', TS, 'last_heartbeat', TS)
  redis.call('ZADD', P .. 'scheduled:' .. Q, ARGV[13], ID)
  redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
else
  return redis.error_reply('finish.lua: unknown mode ' .. tostring(MODE))
end
release_rate_limit(final_status)
return 1
