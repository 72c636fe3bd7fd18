-- Records the outcomes of executions that ended at about the same moment, in one atomic call
-- (issue 15), as RQ's worker does for each in its handle_job_success / handle_job_failure
-- transactions: ends each execution (execution hash, StartedJobRegistry member, executions
-- zset, worker executions set, current_job, state), updates the worker's counters, then per
-- job and MODE:
--   finished  status finished, result entry, FinishedJobRegistry, result_ttl (0 deletes, -1 keeps)
--   failed    status failed, result entry (type 2), FailedJobRegistry, failure_ttl
--   stopped   as failed with status stopped
--   requeue   retry now: status queued, retries_left, back on the queue (front if asked)
--   schedule  retry later: status scheduled, ScheduledJobRegistry
--   forward   not run here: status queued, origin and queue = A13 (no counters)
-- and enqueues dependents whose dependencies are now met (2.x style: straight to their queue),
-- repeats a job that has repeats left (2.12+ Repeat), and releases its rq 3.0 rate-limit slot.
--
-- ARGV: 1 prefix, 2 worker name, 3 default job timeout (for enqueued dependents), then per job
--   17 items: job id, execution id, queue (job origin), '1' when its StartedJobRegistry
--   member is the plain job id (a job enqueued by rq 1.x, as start.lua wrote it) else ''
--   ("<id>:<execution id>"), now (rq timestamp), now (int), mode, ttl ('' = unset), working
--   time (float), A12 retries_left after this attempt (requeue, schedule) or repeats_left
--   after this run ('' = no repeat) for finished, A13 at_front ('1'/'0') for requeue, run-at
--   (int) for schedule and for a repeat ('0' = now), target queue for forward, the job's
--   rate_limit_key ('' = none), '1' when the job hash has dependency_ids or dependency_id
--   (else '0'), both as read when the job started (RQ's worker, too, uses the job it
--   dequeued), then its result entry: type ('' = no entry, '1' successful, '2' failed), the
--   value (return_value for type 1, '' = omitted for a None; exc_string for type 2),
--   execution_started_at and execution_ended_at (floats). The entry's worker_name is ARGV 2
--   and its execution_id the job's; the worker counter follows from the mode. (Field names
--   and values every job shares are not sent per job: issue 15, measured with
--   benches/script_cost.py.)
-- Prepended at build time: lib/enqueue.lua, lib/dependents.lua, lib/failure.lua.
-- Returns 2 items per job, in order: 1 written; 0 when the job hash no longer exists
-- (nothing written for the job); 2 when the execution was not in the StartedJobRegistry any
-- more (nothing written); then '' or the notes of a key a producer controls that had the
-- wrong type (see below).
--
-- Safe to repeat after a lost reply: a job whose execution has left the StartedJobRegistry
-- gets nothing written (2), whichever batch it is repeated in.
--
-- One command per batch, not per job, wherever the end state is the same (issue 15): the
-- registry check (ZMSCORE) and removal (ZREM) per queue (for a lone "<id>:<execution id>"
-- member, its ZREM is the check), the execution hashes (DEL), the
-- worker's executions set (SREM), the worker hash (one HMGET, each counter's HINCRBY, one
-- HINCRBYFLOAT of the summed working time, one SRANDMEMBER for current_job and state),
-- whether any dependents set exists (EXISTS; SMEMBERS only then), and the FinishedJobRegistry
-- (one ZADD of every score/member pair per queue). Per job remain the writes into keys named
-- after it: rq:executions:<id> (ZREM), the job hash (its TTL, status), its results stream
-- (XADD, TTL).
--
-- Hostile keys (issue 13): Redis does not roll back a failed script, and every key named after
-- a job's id, origin or dependents can be given another type by a producer. Each command on
-- such a key goes through redis.pcall, so the script always runs to its end, one job's keys
-- never spoil the others' outcomes, and each job ends in exactly one place RQ can see: a
-- results stream of the wrong type loses the result entry only; a registry or queue of its
-- origin of the wrong type (finished, failed, scheduled, queue) fails the job into its failed
-- registry instead (status failed, exc_info saying which key); a StartedJobRegistry of the
-- wrong type is taken as holding the execution (start.lua put it there); dependents whose keys
-- are unusable stay deferred. Every such case is returned as a note of its job, which the
-- worker logs with the job id. No command is added.
--
-- Commands are spent only where RQ's readers can tell the difference (issue 5):
-- - the worker hash's existence and current_job come from one HMGET (see below);
-- - when the outcome gives the job hash a TTL (Job.cleanup: success with result_ttl > 0, a
--   failure with failure_ttl > 0 or unset), that EXPIRE is the existence check; otherwise
--   EXISTS. The rate-limit key and whether the job has dependencies come from ARGV;
-- - the dependents set gets its EXPIRE only when it still exists after the dependents were
--   enqueued, the dependencies set only when the job has dependencies (rq_has_dependencies);
--   an EXPIRE of a missing key answers 0 and changes nothing, so the end state is RQ's.
local P, NAME = ARGV[1], ARGV[2]
local DEFAULT_TIMEOUT = tonumber(ARGV[3])
local FIELDS = 17
-- The worker counter each mode adds to ('' = none); a mode not here is refused.
local COUNTER = {finished = 'successful_job_count', failed = 'failed_job_count',
  stopped = 'failed_job_count', requeue = 'failed_job_count', schedule = 'failed_job_count',
  forward = ''}
local NARGV = #ARGV
local wk = P .. 'worker:' .. NAME
local wek = wk .. ':executions'

-- Numbers read from ARGV, each text converted once per call (jobs of a batch share their
-- TTLs and mostly their second), and the texts of numbers this script computes: a Lua
-- number given to redis.call is formatted with sprintf every time.
local NUMS = {}
local function num(text)
  local v = NUMS[text]
  if v == nil then
    v = tonumber(text)
    NUMS[text] = v
  end
  return v
end
local SCORES = {}
-- now + ttl as text, for the FinishedJobRegistry.
local function score_text(now_text, ttl_text)
  local by_now = SCORES[now_text]
  if not by_now then
    by_now = {}
    SCORES[now_text] = by_now
  end
  local score = by_now[ttl_text]
  if not score then
    score = tostring(num(now_text) + num(ttl_text))
    by_now[ttl_text] = score
  end
  return score
end

-- Where each job's items start in ARGV; its StartedJobRegistry member, and the
-- "<id>:<execution id>" that names its execution hash and worker executions set member.
local at, members, composites = {}, {}, {}
local n = 0
do
  local i = 4
  while i <= NARGV do
    local mode = ARGV[i + 6]
    if COUNTER[mode] == nil or i + FIELDS - 1 > NARGV then
      return redis.error_reply('finish.lua: unknown mode or short job items: ' .. tostring(mode))
    end
    n = n + 1
    at[n] = i
    local id = ARGV[i]
    local composite = id .. ':' .. ARGV[i + 1]
    composites[n] = composite
    members[n] = ARGV[i + 3] == '1' and id or composite
    i = i + FIELDS
  end
end
if n == 0 then return {} end

local code = {}  -- per job: nil while its outcome is to be written, else its return code
local notes = {} -- per job: nil or a table of notes

local function note(k, text)
  local t = notes[k]
  if not t then t = {} notes[k] = t end
  t[#t + 1] = text
end

-- The executions are over. One that is no longer in the StartedJobRegistry had its outcome
-- recorded already (a repeated call whose reply was lost) or RQ's abandoned-job cleanup took
-- it over: nothing more is written for it, so nothing is counted or enqueued twice.
-- A plain id (rq 1.x) in the registry is this execution's only while this execution's hash
-- exists (the first call deletes it below, so a repeated call writes nothing twice) and the job
-- hash does not name another worker: rq 1.x's own abandoned-job cleanup, which knows no
-- execution hash, may have requeued the job of a worker that stalled, and another worker
-- started it again under the same member (found by the soak's frozen worker).
local function plain_is_this_execution(k)
  if redis.call('EXISTS', P .. 'execution:' .. composites[k]) == 0 then return false end
  local w = redis.pcall('HGET', P .. 'job:' .. ARGV[at[k]], 'worker_name')
  return type(w) ~= 'string' or w == '' or w == NAME
end

local groups, queues = {}, {}
for k = 1, n do
  local q = ARGV[at[k] + 2]
  local g = groups[q]
  if not g then
    g = {}
    groups[q] = g
    queues[#queues + 1] = q
  end
  g[#g + 1] = k
end
for _, q in ipairs(queues) do
  local g = groups[q]
  local wip = P .. 'wip:' .. q
  local group_members = {}
  for j = 1, #g do group_members[j] = members[g[j]] end
  local single = #g == 1 and group_members[1] ~= ARGV[at[g[1]]]
  local scores
  if single then
    -- One "<id>:<execution id>" member: its ZREM is the check (one command, not two).
    scores = redis.pcall('ZREM', wip, group_members[1])
    if not rqw_failed(scores) then scores = {scores == 1} end
  else
    scores = redis.pcall('ZMSCORE', wip, unpack(group_members))
  end
  if rqw_failed(scores) then
    -- start.lua put the executions there; the key was replaced since. Record the outcomes.
    for j = 1, #g do note(g[j], wip .. ' is not a sorted set') end
  else
    local found = {}
    for j = 1, #g do
      local base = at[g[j]]
      local id = ARGV[base]
      local plain = group_members[j] == id
      -- A plain id (rq 1.x) may be a later execution's member (plain_is_this_execution).
      -- "<id>:<execution id>" is this execution's alone.
      local has_execution = nil
      if scores[j] and plain then
        has_execution = plain_is_this_execution(g[j])
      end
      if scores[j] and (not plain or has_execution) then
        if not single then found[#found + 1] = group_members[j] end -- (a single one is removed)
      else
        -- Under the other member form (the job hash gained or lost group_id between the
        -- start and a look-up after a lost reply)? Under the same condition.
        if has_execution == nil then
          if plain then
            -- (The other form is "<id>:<execution id>": this execution's while its hash exists.)
            has_execution = redis.call('EXISTS', P .. 'execution:' .. composites[g[j]]) == 1
          else
            has_execution = plain_is_this_execution(g[j])
          end
        end
        local other = id
        if plain then other = composites[g[j]] end
        if has_execution and redis.call('ZSCORE', wip, other) then
          found[#found + 1] = other
        else
          code[g[j]] = 2
        end
      end
    end
    if #found > 0 then
      redis.call('ZREM', wip, unpack(found))
    end
  end
end

-- Execution bookkeeping of every job of the batch (as RQ's cleanup_execution).
do
  local ekeys = {}
  for k = 1, n do
    local base = at[k]
    local id, x = ARGV[base], ARGV[base + 1]
    ekeys[k] = P .. 'execution:' .. composites[k]
    if rqw_failed(redis.pcall('ZREM', P .. 'executions:' .. id, x)) then
      note(k, P .. 'executions:' .. id .. ' is not a sorted set')
    end
  end
  redis.call('DEL', unpack(ekeys))
  redis.call('SREM', wek, unpack(composites))
end

-- Worker bookkeeping, when the worker hash still exists. One HMGET reads current_job and
-- tells whether the hash exists: every write to it sets at least one of these fields
-- (worker_record's write_birth all of them, start.lua and set_state `state`, heartbeat.lua
-- `last_heartbeat` (to an existing hash only), register_death `death`,
-- mark_shutdown_requested `shutdown_requested_date`), so "any of them set" is EXISTS.
local ended = {}
local any = false
for k = 1, n do
  if code[k] == nil then
    ended[ARGV[at[k]]] = true
    any = true
  end
end
if any then
  local w = redis.call('HMGET', wk, 'current_job', 'state', 'birth', 'last_heartbeat', 'death',
    'shutdown_requested_date')
  if w[1] or w[2] or w[3] or w[4] or w[5] or w[6] then
    local fields, counts, working_time = {}, {}, 0
    for k = 1, n do
      local counter = COUNTER[ARGV[at[k] + 6]]
      if code[k] == nil and counter ~= '' then
        if not counts[counter] then
          counts[counter] = 0
          fields[#fields + 1] = counter
        end
        counts[counter] = counts[counter] + 1
        working_time = working_time + tonumber(ARGV[at[k] + 8])
      end
    end
    for _, field in ipairs(fields) do
      redis.call('HINCRBY', wk, field, counts[field])
    end
    if #fields > 0 then
      redis.call('HINCRBYFLOAT', wk, 'total_working_time', string.format('%.17g', working_time))
    end
    local other = redis.call('SRANDMEMBER', wek)
    if other then
      if w[1] and ended[w[1]] then
        redis.call('HSET', wk, 'current_job', string.match(other, '^(.*):[^:]*$'))
      end
    else
      if w[1] then
        redis.call('HDEL', wk, 'current_job')
      end
      redis.call('HSET', wk, 'state', 'idle', 'current_job_working_time', '0')
    end
  end
end

-- Whether any job of the batch that enqueues dependents has a dependents set: one EXISTS for
-- all (nothing in this script creates one).
local dependents_exist = false
do
  local keys = {}
  for k = 1, n do
    local mode = ARGV[at[k] + 6]
    if code[k] == nil and (mode == 'finished' or mode == 'failed' or mode == 'stopped') then
      keys[#keys + 1] = P .. 'job:' .. ARGV[at[k]] .. ':dependents'
    end
  end
  if #keys > 0 then
    dependents_exist = redis.call('EXISTS', unpack(keys)) > 0
  end
end

-- The job being written (set by the loop below for each job in turn).
local K, ID, Q, TS, NOW, NOW_TEXT, MODE, TTL, A12, A13, RATE_LIMIT_KEY, HAS_DEPENDENCIES
local ENTRY_TYPE, ENTRY_VALUE, ENTRY_STARTED, ENTRY_ENDED, X
-- (The dependents and dependencies keys are named where used: most jobs need neither.)
local jk, results_key

-- The job's result entry, in RQ's field order (Result.serialize; protocol::result's
-- ResultEntry::fields is the same list).
local function add_result()
  if ENTRY_TYPE == '' then return end
  local reply
  if ENTRY_VALUE == '' and ENTRY_TYPE == '1' then
    -- A None return value: no return_value field.
    reply = redis.pcall('XADD', results_key, 'MAXLEN', '~', '10', '*', 'type', '1',
      'worker_name', NAME, 'execution_id', X, 'execution_started_at', ENTRY_STARTED,
      'execution_ended_at', ENTRY_ENDED)
  else
    reply = redis.pcall('XADD', results_key, 'MAXLEN', '~', '10', '*', 'type', ENTRY_TYPE,
      'worker_name', NAME, ENTRY_TYPE == '1' and 'return_value' or 'exc_string', ENTRY_VALUE,
      'execution_id', X, 'execution_started_at', ENTRY_STARTED, 'execution_ended_at', ENTRY_ENDED)
  end
  if rqw_failed(reply) then
    rqw_notes[#rqw_notes + 1] = results_key .. ' is not a stream: no result entry written'
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

-- FinishedJobRegistry members of jobs that do not repeat, added per queue after the loop.
local finished_pairs, finished_jobs, finished_queues = {}, {}, {}
local function place_finished_later(score)
  local pairs_q = finished_pairs[Q]
  if not pairs_q then
    pairs_q = {}
    finished_pairs[Q] = pairs_q
    finished_jobs[Q] = {}
    finished_queues[#finished_queues + 1] = Q
  end
  pairs_q[#pairs_q + 1] = score
  pairs_q[#pairs_q + 1] = ID
  finished_jobs[Q][#finished_jobs[Q] + 1] = K
end

-- The first write into the job hash of each outcome: a key replaced by another type while
-- the job ran is no job any more (as if deleted: 0, nothing more written for it).
local function job_is_gone(reply)
  return rqw_failed(reply)
end

-- rq 3.0 rate limits: once the outcome is final (not queued or started), free the slot.
local function release_rate_limit(status)
  if status ~= 'queued' and status ~= 'started' then
    rq_release_rate_limit(P, ID, RATE_LIMIT_KEY, TS, NOW)
  end
end

-- Returns true when the dependents set still exists afterwards.
local function enqueue_dependents(parent_status)
  if not dependents_exist then return false end
  return rq_enqueue_dependents(P, ID, parent_status, TS, NOW, DEFAULT_TIMEOUT)
end

-- Writes the outcome of the current job; returns its code.
local function write_outcome()
  -- The job hash must still exist. The TTL this outcome gives it (RQ's Job.cleanup:
  -- result_ttl > 0 without a repeat, or failure_ttl > 0, RQ_DEFAULT_FAILURE_TTL of
  -- lib/failure.lua when unset), if any, is applied here and doubles as that check (EXPIRE
  -- answers 0 for a missing key, exactly when EXISTS would); the paths below do not EXPIRE
  -- the hash again.
  local repeating = MODE == 'finished' and A12 ~= ''
  local failure_ttl = nil
  if (MODE == 'failed' or MODE == 'stopped') and TTL ~= '' then failure_ttl = num(TTL) end
  local job_ttl, job_ttl_text = nil, nil
  if MODE == 'finished' and not repeating and num(TTL) > 0 then
    job_ttl, job_ttl_text = num(TTL), TTL
  elseif (MODE == 'failed' or MODE == 'stopped') and (failure_ttl or RQ_DEFAULT_FAILURE_TTL) > 0 then
    job_ttl = failure_ttl or RQ_DEFAULT_FAILURE_TTL
    job_ttl_text = failure_ttl and TTL or tostring(RQ_DEFAULT_FAILURE_TTL)
  end
  if job_ttl then
    if redis.call('EXPIRE', jk, job_ttl_text) == 0 then
      return 0
    end
  elseif redis.call('EXISTS', jk) == 0 then
    return 0
  end

  local final_status = MODE
  if MODE == 'finished' then
    local ttl = num(TTL)
    local dependents_left = enqueue_dependents('finished')
    if ttl == 0 and not repeating then
      redis.call('DEL', P .. 'executions:' .. ID, jk, jk .. ':dependents', P .. 'job::' .. ID .. ':dependencies', results_key)
      release_rate_limit(final_status)
      return 1
    end
    if ttl ~= 0 then
      if job_is_gone(redis.pcall('HSET', jk, 'status', 'finished', 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
      add_result()
      if ttl > 0 then
        redis.call('EXPIRE', results_key, TTL)
        if repeating then
          final_status = place(final_status, 'ZADD', P .. 'finished:' .. Q, NOW + ttl, ID)
        else
          place_finished_later(score_text(NOW_TEXT, TTL))
          -- The job hash got this TTL above (the existence check).
          if dependents_left then
            redis.call('EXPIRE', jk .. ':dependents', TTL)
          end
          if HAS_DEPENDENCIES then
            redis.call('EXPIRE', P .. 'job::' .. ID .. ':dependencies', TTL)
          end
        end
      else
        redis.call('PERSIST', results_key)
        if repeating then
          final_status = place(final_status, 'ZADD', P .. 'finished:' .. Q, '+inf', ID)
        else
          place_finished_later('+inf')
        end
      end
    end
    if repeating and final_status == 'finished' then
      -- Repeat.schedule: one repeat fewer, then straight back on the queue or scheduled.
      redis.call('HSET', jk, 'repeats_left', A12)
      if A13 == '0' then
        redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', TS)
        final_status = place('queued', 'RPUSH', P .. 'queue:' .. Q, ID)
      else
        redis.call('HSET', jk, 'status', 'scheduled')
        final_status = place('scheduled', 'ZADD', P .. 'scheduled:' .. Q, A13, ID)
        redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
      end
    end
  elseif MODE == 'failed' or MODE == 'stopped' then
    if job_is_gone(redis.pcall('HSET', jk, 'status', MODE, 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
    add_result()
    rq_register_failure(P, ID, Q, failure_ttl, MODE, TS, NOW, DEFAULT_TIMEOUT, HAS_DEPENDENCIES,
      job_ttl ~= nil, not dependents_exist)
  elseif MODE == 'requeue' then
    final_status = 'queued'
    if job_is_gone(redis.pcall('HSET', jk, 'status', 'queued', 'retries_left', A12, 'enqueued_at', TS, 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
    if A13 == '1' then
      final_status = place(final_status, 'LPUSH', P .. 'queue:' .. Q, ID)
    else
      final_status = place(final_status, 'RPUSH', P .. 'queue:' .. Q, ID)
    end
  elseif MODE == 'forward' then
    final_status = 'queued'
    -- Not ours to run: hand the job, intact, to the queue a Python worker serves.
    local target = A13
    if job_is_gone(redis.pcall('HSET', jk, 'status', 'queued', 'origin', target, 'enqueued_at', TS, 'started_at', '', 'worker_name', '', 'last_heartbeat', '')) then return 0 end
    final_status = place(final_status, 'RPUSH', P .. 'queue:' .. target, ID)
    if final_status == 'queued' then
      redis.call('SADD', P .. 'queues', P .. 'queue:' .. target)
    else
      redis.call('HSET', jk, 'origin', Q)
    end
  elseif MODE == 'schedule' then
    final_status = 'scheduled'
    if job_is_gone(redis.pcall('HSET', jk, 'status', 'scheduled', 'retries_left', A12, 'ended_at', TS, 'last_heartbeat', TS)) then return 0 end
    final_status = place(final_status, 'ZADD', P .. 'scheduled:' .. Q, A13, ID)
    redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
  end
  -- A finished job placed later is final either way (finished, or failed instead).
  release_rate_limit(final_status)
  return 1
end

-- Makes job k the current one.
local function select_job(k)
  local base = at[k]
  K = k
  ID, X, Q, TS, NOW_TEXT = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 4], ARGV[base + 5]
  NOW = num(NOW_TEXT)
  MODE, TTL, A12, A13 = ARGV[base + 6], ARGV[base + 7], ARGV[base + 9], ARGV[base + 10]
  RATE_LIMIT_KEY, HAS_DEPENDENCIES = ARGV[base + 11], ARGV[base + 12] == '1'
  ENTRY_TYPE, ENTRY_VALUE = ARGV[base + 13], ARGV[base + 14]
  ENTRY_STARTED, ENTRY_ENDED = ARGV[base + 15], ARGV[base + 16]
  jk = P .. 'job:' .. ID
  results_key = P .. 'results:' .. ID
  rqw_notes = notes[k] or {}
end

for k = 1, n do
  if code[k] == nil then
    select_job(k)
    code[k] = write_outcome()
    if #rqw_notes > 0 then notes[k] = rqw_notes end
  end
end

-- The FinishedJobRegistry, one ZADD per queue; when that key is unusable, each of its jobs
-- fails into its failed registry instead (as place() does for one).
for _, q in ipairs(finished_queues) do
  if rqw_failed(redis.pcall('ZADD', P .. 'finished:' .. q, unpack(finished_pairs[q]))) then
    for _, k in ipairs(finished_jobs[q]) do
      select_job(k)
      fail_unplaced(P .. 'finished:' .. q)
      notes[k] = rqw_notes
    end
  end
end

local out = {}
for k = 1, n do
  out[2 * k - 1] = code[k]
  local t = notes[k]
  out[2 * k] = (t and #t > 0) and table.concat(t, '; ') or ''
end
return out
