-- Takes the next job and starts it, atomically: a job id is never only in the worker's memory.
-- Moves an id from a queue into its intermediate list (as RQ's LMOVE does), then, in the same
-- script, writes everything RQ's worker writes when a job starts (execution hash, executions
-- zset, StartedJobRegistry member "<id>:<execution id>", worker state and current job, job
-- status/started_at/worker_name) and removes the id from the intermediate list.
--
-- ARGV: 1 prefix, 2 worker name, 3 execution id, 4 now (rq timestamp), 5 now (float),
--       6 now (int), 7 job monitoring interval, 8 default timeout, 9 worker key ttl,
--       10 claimed queue ('' = pop), 11 claimed id, 12.. queue names in priority order.
-- Returns nil when every queue is empty, else {queue, id, heartbeat ttl, {hash fields...}}.
local P, NAME, X, TS, NOWF = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local NOW = tonumber(ARGV[6])
local INTERVAL = tonumber(ARGV[7])
local DEFAULT_TIMEOUT = tonumber(ARGV[8])
local WORKER_TTL = tonumber(ARGV[9])

local function start(q, id)
  local jk = P .. 'job:' .. id
  local inter = P .. 'queue:' .. q .. ':intermediate'
  local fields = redis.call('HGETALL', jk)
  if #fields == 0 then
    -- The job was deleted after it was enqueued: nothing to run.
    redis.call('LREM', inter, 1, id)
    return nil
  end
  local timeout, origin = nil, q
  for i = 1, #fields, 2 do
    if fields[i] == 'timeout' then timeout = tonumber(fields[i + 1]) end
    if fields[i] == 'origin' and fields[i + 1] ~= '' then origin = fields[i + 1] end
  end
  if timeout == nil or timeout == 0 then timeout = DEFAULT_TIMEOUT end
  local ttl
  if timeout > 0 then
    ttl = math.floor(math.min(timeout, INTERVAL)) + 60
  else
    ttl = INTERVAL + 60
  end
  local composite = id .. ':' .. X
  local ek = P .. 'execution:' .. id .. ':' .. X
  local wk = P .. 'worker:' .. NAME
  local wek = wk .. ':executions'
  redis.call('HSET', ek, 'id', X, 'job_id', id, 'created_at', NOWF, 'last_heartbeat', NOWF, 'worker_name', NAME)
  redis.call('EXPIRE', ek, ttl)
  redis.call('ZADD', P .. 'executions:' .. id, NOW + ttl + 60, X)
  redis.call('EXPIRE', P .. 'executions:' .. id, ttl + 60)
  redis.call('ZADD', P .. 'wip:' .. origin, NOW + ttl, composite)
  redis.call('SADD', wek, composite)
  redis.call('EXPIRE', wek, math.max(ttl + 60, WORKER_TTL))
  redis.call('HSET', wk, 'state', 'busy', 'current_job', id, 'current_job_working_time', '0', 'last_heartbeat', TS)
  redis.call('EXPIRE', wk, math.max(ttl, WORKER_TTL))
  redis.call('HSET', jk, 'last_heartbeat', TS, 'status', 'started', 'started_at', TS, 'worker_name', NAME)
  redis.call('PERSIST', jk)
  redis.call('LREM', inter, 1, id)
  return {q, id, ttl, fields}
end

if ARGV[10] ~= '' then
  return start(ARGV[10], ARGV[11])
end
for i = 12, #ARGV do
  local q = ARGV[i]
  local qk = P .. 'queue:' .. q
  local inter = qk .. ':intermediate'
  -- Skip over ids of deleted jobs, a bounded number per call.
  for _ = 1, 100 do
    local id = redis.call('LMOVE', qk, inter, 'LEFT', 'RIGHT')
    if not id then break end
    local started = start(q, id)
    if started then return started end
  end
end
return nil
