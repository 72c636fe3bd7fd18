-- Recovers jobs whose worker is gone (after enqueue.lua, dependents.lua and failure.lua), as RQ's
-- maintenance does, one atomic call per batch:
--
-- mode 'abandoned' (StartedJobRegistry.cleanup): each given rq:wip:<q> member whose score is
--   still expired leaves the registry; its job, if its status is still 'started' (rq 3.0's
--   rule: a leftover entry of a finished or failed job is not an abandoned job), is retried
--   when it has retries left, else failed (AbandonedJobError).
-- mode 'stuck' (IntermediateQueue.cleanup): each id in rq:queue:<q>:intermediate that no
--   started execution holds is dropped when its job is gone; otherwise its first sighting is
--   recorded (first_seen key, SET NX EX 86400), and once that is more than STUCK_AFTER seconds
--   old the job is retried or failed (worker.handle_job_failure: RQ fails it, it does not
--   requeue it) and leaves the list.
--
-- Retried (Job.retry): retries_left - 1; interval 0 -> back on the queue (front when
-- enqueue_at_front_on_retry); interval > 0 -> status scheduled in rq:scheduled:<q>.
-- Failed (Job._handle_failure): status failed, FailedJobRegistry (now + failure_ttl, or 1
-- year), the job's TTL, a type 2 result entry, then dependents that allow failures.
--
-- ARGV: 1 prefix, 2 queue, 3 now (rq timestamp), 4 now (int), 5 now (float), 6 mode,
--       7 worker_name of the failure result, 8 worker whose failed_job_count counts each
--       failure or retry ('' = none), 9 exc_string (base64 of zlib, as stored),
--       10 default timeout, 11 STUCK_AFTER (seconds), 12.. (abandoned) registry members.
-- Returns {failed, retried, removed}: removed counts registry members / list entries dropped;
-- a fourth item, notes, when a key had the wrong type (logged by the caller).
local P, Q, TS = ARGV[1], ARGV[2], ARGV[3]
local NOW, NOWF = tonumber(ARGV[4]), tonumber(ARGV[5])
local MODE, RESULT_WORKER, COUNT_WORKER, EXC = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local DEFAULT_TIMEOUT, STUCK_AFTER = ARGV[10], tonumber(ARGV[11])
local DEFAULT_FAILURE_TTL = 31536000
local failed, retried, removed = 0, 0, 0

-- The job id of a StartedJobRegistry member: `<id>:<execution id>` (rq 2.x, 3.0), or the plain
-- id (rq 1.x), which may itself contain ':' (rq 1.x and 2.0.0 accept any job id).
local function job_id_of(member)
  if redis.call('EXISTS', P .. 'job:' .. member) == 1 then return member end
  return string.match(member, '^(.*):[^:]*$') or member
end

local function retry_interval(raw, left)
  if not raw or raw == '' then return 0 end
  local ok, list = pcall(cjson.decode, raw)
  if not ok or type(list) ~= 'table' or #list == 0 then return 0 end
  return tonumber(list[math.max(#list - left, 0) + 1]) or 0
end

local function fail_or_retry(id)
  local jk = P .. 'job:' .. id
  -- The callers read the hash's status first (pcall): jk is a hash here.
  local f = redis.call('HMGET', jk, 'retries_left', 'retry_intervals', 'enqueue_at_front_on_retry',
    'failure_ttl', 'ttl', 'dependency_ids', 'dependency_id')
  local has_dependencies = rq_has_dependencies(f[6], f[7])
  if COUNT_WORKER ~= '' then
    local wk = P .. 'worker:' .. COUNT_WORKER
    if redis.call('EXISTS', wk) == 1 then
      redis.call('HINCRBY', wk, 'failed_job_count', 1)
    end
  end
  local left = tonumber(f[1] or '')
  if left and left > 0 then
    local interval = retry_interval(f[2], left)
    redis.call('HSET', jk, 'retries_left', left - 1)
    if interval > 0 then
      redis.call('HSET', jk, 'status', 'scheduled')
      local ttl = tonumber(f[5] or '')
      if ttl and ttl > 0 then
        redis.call('EXPIRE', jk, ttl)
        redis.call('EXPIRE', jk .. ':dependents', ttl)
        if has_dependencies then
          redis.call('EXPIRE', P .. 'job::' .. id .. ':dependencies', ttl)
        end
      end
      redis.call('SADD', P .. 'queues', P .. 'queue:' .. Q)
      redis.call('ZADD', P .. 'scheduled:' .. Q, NOW + interval, id)
      retried = retried + 1
      return
    elseif rq_enqueue_job(P, id, Q, f[3] == '1', TS, NOW, DEFAULT_TIMEOUT) ~= 'unusable' then
      retried = retried + 1
      return
    end
    -- Its queue key is not a list (issue 13): failed below instead of lost.
  end
  local results_key = P .. 'results:' .. id
  redis.call('HSET', jk, 'status', 'failed')
  if rqw_failed(redis.pcall('XADD', results_key, 'MAXLEN', '~', '10', '*', 'type', '2', 'worker_name',
      RESULT_WORKER, 'exc_string', EXC)) then
    rqw_notes[#rqw_notes + 1] = results_key .. ' is not a stream: no result entry written'
  end
  local failure_ttl = nil
  if f[4] and f[4] ~= '' then failure_ttl = tonumber(f[4]) or DEFAULT_FAILURE_TTL end
  rq_register_failure(P, id, Q, failure_ttl, 'failed', TS, NOW, DEFAULT_TIMEOUT, has_dependencies)
  failed = failed + 1
end

local wip = P .. 'wip:' .. Q
if MODE == 'abandoned' then
  for i = 12, #ARGV do
    local member = ARGV[i]
    local score = tonumber(redis.call('ZSCORE', wip, member) or '')
    if score and score <= NOW then
      redis.call('ZREM', wip, member)
      removed = removed + 1
      local id = job_id_of(member)
      -- A job key of the wrong type (issue 13) is not a job: it only leaves the registry.
      local status = redis.pcall('HGET', P .. 'job:' .. id, 'status')
      if rqw_failed(status) then
        rqw_notes[#rqw_notes + 1] = 'job ' .. id .. ' left ' .. wip .. ': its key is not a hash'
      elseif status == 'started' then
        fail_or_retry(id)
      end
    end
  end
elseif MODE == 'stuck' then
  local inter = P .. 'queue:' .. Q .. ':intermediate'
  local ids = redis.call('LRANGE', inter, 0, -1)
  if #ids == 0 then return {0, 0, 0} end
  local skip = {}
  for _, member in ipairs(redis.call('ZRANGE', wip, 0, -1)) do
    skip[job_id_of(member)] = true
  end
  for _, id in ipairs(ids) do
    if not skip[id] then
      skip[id] = true
      if redis.call('EXISTS', P .. 'job:' .. id) == 0
          or rqw_failed(redis.pcall('HEXISTS', P .. 'job:' .. id, 'data')) then
        redis.call('LREM', inter, 1, id)
        removed = removed + 1
      else
        local fsk = inter .. ':first_seen:' .. id
        if not redis.call('SET', fsk, ARGV[5], 'NX', 'EX', 86400) then
          local first_seen = tonumber(redis.call('GET', fsk) or '')
          if first_seen and NOWF - first_seen > STUCK_AFTER then
            fail_or_retry(id)
            redis.call('LREM', inter, 1, id)
            removed = removed + 1
          end
        end
      end
    end
  end
else
  return redis.error_reply('recover.lua: unknown mode ' .. tostring(MODE))
end
if #rqw_notes > 0 then return {failed, retried, removed, table.concat(rqw_notes, '; ')} end
return {failed, retried, removed}
