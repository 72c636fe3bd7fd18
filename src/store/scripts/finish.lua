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
--       15 the job's rate_limit_key ('' = none), 16 '1' when the job hash has dependency_ids
--       or dependency_id (else '0'), both as read when the job started (RQ's worker, too,
--       uses the job it dequeued), 17.. result entry field/value pairs.
-- Prepended at build time: lib/enqueue.lua, lib/dependents.lua, lib/failure.lua.
-- Returns 1; 0 when the job hash no longer exists (nothing written for the job); 2 when the
-- execution was not in the StartedJobRegistry any more (nothing written); {1, notes} when
-- written but a key a producer controls had the wrong type (see below).
--
-- Hostile keys (issue 13): Redis does not roll back a failed script, and every key named after
-- the job's id, origin or dependents can be given another type by a producer. Each write into
-- such a key goes through redis.pcall, so the script always runs to its end and the job ends
-- in exactly one place RQ can see: a results stream of the wrong type loses the result entry
-- only; a registry or queue of its origin of the wrong type (finished, failed, scheduled,
-- queue) fails the job into its failed registry instead (status failed, exc_info saying
-- which key); dependents whose keys are unusable stay deferred. Every such case is returned
-- as a note, which the worker logs with the job id. No command is added.
--
-- Commands are spent only where RQ's readers can tell the difference (issue 5):
-- - the worker hash's existence and current_job come from one HMGET (see below);
-- - when the outcome gives the job hash a TTL (Job.cleanup: success with result_ttl > 0, a
--   failure with failure_ttl > 0 or unset), that EXPIRE is the existence check; otherwise
--   EXISTS. The rate-limit key and whether the job has dependencies come from ARGV;
-- - the dependents set gets its EXPIRE only when it still exists after the dependents were
--   enqueued, the dependencies set only when the job has dependencies (rq_has_dependencies);
--   an EXPIRE of a missing key answers 0 and changes nothing, so the end state is RQ's.
local P, NAME, ID, X, Q, TS = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local NOW = tonumber(ARGV[7])
local MODE, TTL, WT, COUNTER = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local DEFAULT_TIMEOUT = tonumber(ARGV[14])
local RATE_LIMIT_KEY, HAS_DEPENDENCIES = ARGV[15], ARGV[16] == '1'
local FIRST_RESULT_ARG = 17

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
local was_started = redis.pcall('ZREM', P .. 'wip:' .. Q, composite)
if rqw_failed(was_started) then
  -- start.lua put the execution there; the key was replaced since. Record the outcome.
  rqw_notes[#rqw_notes + 1] = P .. 'wip:' .. Q .. ' is not a sorted set'
  was_started = 1
end
local had_execution = redis.call('DEL', P .. 'execution:' .. ID .. ':' .. X)
redis.call('ZREM', P .. 'executions:' .. ID, X)
redis.call('SREM', wek, composite)
-- A job enqueued by rq 1.x is in the registry under its plain id (start.lua). Only the first
-- call finds this execution's hash, so a repeated call still writes nothing twice.
if was_started == 0 and had_execution == 1 then
  was_started = redis.call('ZREM', P .. 'wip:' .. Q, ID)
end
if was_started == 0 then
  return 2
end

-- Worker bookkeeping, when the worker hash still exists. One HMGET reads current_job and
-- tells whether the hash exists: every write to it sets at least one of these fields
-- (worker_record's write_birth all of them, start.lua and set_state `state`, heartbeat.lua
-- `last_heartbeat` (to an existing hash only), register_death `death`,
-- mark_shutdown_requested `shutdown_requested_date`), so "any of them set" is EXISTS.
local w = redis.call('HMGET', wk, 'current_job', 'state', 'birth', 'last_heartbeat', 'death',
  'shutdown_requested_date')
if w[1] or w[2] or w[3] or w[4] or w[5] or w[6] then
  if COUNTER ~= '' then
    redis.call('HINCRBY', wk, COUNTER, 1)
    redis.call('HINCRBYFLOAT', wk, 'total_working_time', WT)
  end
  local other = redis.call('SRANDMEMBER', wek)
  if other then
    if w[1] == ID then
      redis.call('HSET', wk, 'current_job', string.match(other, '^(.*):[^:]*$'))
    end
  else
    if w[1] then
      redis.call('HDEL', wk, 'current_job')
    end
    redis.call('HSET', wk, 'state', 'idle', 'current_job_working_time', '0')
  end
end

-- The job hash must still exist. The TTL this outcome gives it (RQ's Job.cleanup: result_ttl
-- > 0 without a repeat, or failure_ttl > 0, RQ_DEFAULT_FAILURE_TTL of lib/failure.lua when
-- unset), if any, is applied here and doubles as that check (EXPIRE answers 0 for a missing
-- key, exactly when EXISTS would); the paths below do not EXPIRE the hash again.
local repeating = MODE == 'finished' and ARGV[12] ~= ''
local failure_ttl = nil
if (MODE == 'failed' or MODE == 'stopped') and TTL ~= '' then failure_ttl = tonumber(TTL) end
local job_ttl = nil
if MODE == 'finished' and not repeating and tonumber(TTL) > 0 then
  job_ttl = tonumber(TTL)
elseif (MODE == 'failed' or MODE == 'stopped') and (failure_ttl or RQ_DEFAULT_FAILURE_TTL) > 0 then
  job_ttl = failure_ttl or RQ_DEFAULT_FAILURE_TTL
end
if job_ttl then
  if redis.call('EXPIRE', jk, job_ttl) == 0 then
    return 0
  end
elseif redis.call('EXISTS', jk) == 0 then
  return 0
end

local function add_result()
  if #ARGV >= FIRST_RESULT_ARG then
    if rqw_failed(redis.pcall('XADD', results_key, 'MAXLEN', '~', '10', '*', unpack(ARGV, FIRST_RESULT_ARG))) then
      rqw_notes[#rqw_notes + 1] = results_key .. ' is not a stream: no result entry written'
    end
  end
end

-- The job could not be put where its outcome belongs (`what` failed, a key of the wrong
-- type): it fails into its failed registry instead, saying why.
local function fail_unplaced(what)
  -- The key names the origin, a producer's text: control characters escaped, bounded.
  local cut = ''
  if #what > 200 then cut, what = '...[+' .. (#what - 200) .. ' bytes]', what:sub(1, 200) end
  what = what:gsub('%c', function(c) return string.format('\\x%02x', c:byte()) end) .. cut
  local reason = what .. ' is not usable (a key of the wrong type)'
  rqw_notes[#rqw_notes + 1] = 'job failed instead: ' .. reason
  redis.call('HSET', jk, 'status', 'failed', 'ended_at', TS, 'exc_info',
    'Traceback (most recent call last):\n  File "<rqw native>", line 1, in rqw\nrqw.errors.InvalidJobError: ' .. reason .. '\n')
  if rqw_failed(redis.pcall('ZADD', P .. 'failed:' .. Q, NOW + RQ_DEFAULT_FAILURE_TTL, ID)) then
    rqw_notes[#rqw_notes + 1] = 'job ' .. ID .. ' is in no registry: ' .. P .. 'failed:' .. Q .. ' is not a sorted set'
  end
  return 'failed'
end

-- A write that places the job (registry or queue of its origin); on error, fail_unplaced.
local function place(status, ...)
  if rqw_failed(redis.pcall(...)) then
    local args = {...}
    return fail_unplaced(args[2])
  end
  return status
end

-- The first write into the job hash of each outcome: a key replaced by another type while
-- the job ran is no job any more (as if deleted: return 0, nothing more written for it).
local function job_is_gone(reply)
  return rqw_failed(reply)
end

local function done()
  if #rqw_notes > 0 then
    return {1, table.concat(rqw_notes, '; ')}
  end
  return 1
end

-- rq 3.0 rate limits: once the outcome is final (not queued or started), free the slot.
local function release_rate_limit(status)
  if status ~= 'queued' and status ~= 'started' then
    rq_release_rate_limit(P, ID, RATE_LIMIT_KEY, TS, NOW)
  end
end
-- Returns true when the dependents set still exists afterwards.
local function enqueue_dependents(parent_status)
  return rq_enqueue_dependents(P, ID, parent_status, TS, NOW, DEFAULT_TIMEOUT)
end

local final_status = MODE
if MODE == 'finished' then
  local ttl = tonumber(TTL)
  local dependents_left = enqueue_dependents('finished')
  if ttl == 0 and not repeating then
    redis.call('DEL', P .. 'executions:' .. ID, jk, dependents_key, dependencies_key, results_key)
    release_rate_limit(final_status)
    return done()
  end
  if ttl ~= 0 then
    if job_is_gone(redis.pcall('HSET', jk, 'status', 'finished', 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
    add_result()
    if ttl > 0 then
      redis.call('EXPIRE', results_key, ttl)
      final_status = place(final_status, 'ZADD', P .. 'finished:' .. Q, NOW + ttl, ID)
      if not repeating then
        -- The job hash got this TTL above (the existence check).
        if dependents_left then
          redis.call('EXPIRE', dependents_key, ttl)
        end
        if HAS_DEPENDENCIES then
          redis.call('EXPIRE', dependencies_key, ttl)
        end
      end
    else
      redis.call('PERSIST', results_key)
      final_status = place(final_status, 'ZADD', P .. 'finished:' .. Q, '+inf', ID)
    end
  end
  if repeating and final_status == 'finished' then
    -- Repeat.schedule: one repeat fewer, then straight back on the queue or scheduled.
    redis.call('HSET', jk, 'repeats_left', ARGV[12])
    if ARGV[13] == '0' then
      redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', TS)
      final_status = place('queued', 'RPUSH', P .. 'queue:' .. Q, ID)
    else
      redis.call('HSET', jk, 'status', 'scheduled')
      final_status = place('scheduled', 'ZADD', P .. 'scheduled:' .. Q, ARGV[13], ID)
      redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
    end
  end
elseif MODE == 'failed' or MODE == 'stopped' then
  if job_is_gone(redis.pcall('HSET', jk, 'status', MODE, 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
  add_result()
  rq_register_failure(P, ID, Q, failure_ttl, MODE, TS, NOW, DEFAULT_TIMEOUT, HAS_DEPENDENCIES,
    job_ttl ~= nil)
elseif MODE == 'requeue' then
  final_status = 'queued'
  if job_is_gone(redis.pcall('HSET', jk, 'status', 'queued', 'retries_left', ARGV[12], 'enqueued_at', TS, 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
  if ARGV[13] == '1' then
    final_status = place(final_status, 'LPUSH', P .. 'queue:' .. Q, ID)
  else
    final_status = place(final_status, 'RPUSH', P .. 'queue:' .. Q, ID)
  end
elseif MODE == 'forward' then
  final_status = 'queued'
  -- Not ours to run: hand the job, intact, to the queue a Python worker serves.
  local target = ARGV[13]
  if job_is_gone(redis.pcall('HSET', jk, 'status', 'queued', 'origin', target, 'enqueued_at', TS, 'started_at', '', 'worker_name', '', 'last_heartbeat', '')) then return 0 end
  final_status = place(final_status, 'RPUSH', P .. 'queue:' .. target, ID)
  if final_status == 'queued' then
    redis.call('SADD', P .. 'queues', P .. 'queue:' .. target)
  else
    redis.call('HSET', jk, 'origin', Q)
  end
elseif MODE == 'schedule' then
  final_status = 'scheduled'
  if job_is_gone(redis.pcall('HSET', jk, 'status', 'scheduled', 'retries_left', ARGV[12], 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
  final_status = place(final_status, 'ZADD', P .. 'scheduled:' .. Q, ARGV[13], ID)
  redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
else
  return redis.error_reply('finish.lua: unknown mode ' .. tostring(MODE))
end
release_rate_limit(final_status)
return done()
