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
--       now), target queue for forward, 14 default job timeout (for enqueued dependents),
--       15.. result entry field/value pairs.
-- Prepended at build time: lib/enqueue.lua, lib/dependents.lua, lib/failure.lua.
-- Returns 1; 0 when the job hash no longer exists (nothing written for the job); 2 when the
-- execution was not in the StartedJobRegistry any more (nothing written).
local P, NAME, ID, X, Q, TS = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local NOW = tonumber(ARGV[7])
local MODE, TTL, WT, COUNTER = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local DEFAULT_TIMEOUT = tonumber(ARGV[14])

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
  if #ARGV >= 15 then
    redis.call('XADD', results_key, 'MAXLEN', '~', '10', '*', unpack(ARGV, 15))
  end
end

-- rq 3.0 rate limits: once the outcome is final (not queued or started), free the slot.
local rate_limit_key = redis.call('HGET', jk, 'rate_limit_key')
local function release_rate_limit(status)
  if status ~= 'queued' and status ~= 'started' then
    rq_release_rate_limit(P, ID, rate_limit_key, TS, NOW)
  end
end
local function enqueue_dependents(parent_status)
  rq_enqueue_dependents(P, ID, parent_status, TS, NOW, DEFAULT_TIMEOUT)
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
  redis.call('HSET', jk, 'status', MODE, 'ended_at', TS, 'last_heartbeat', TS)
  add_result()
  local failure_ttl = nil
  if TTL ~= '' then failure_ttl = tonumber(TTL) end
  rq_register_failure(P, ID, Q, failure_ttl, MODE, TS, NOW, DEFAULT_TIMEOUT)
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
