-- Takes the next jobs and starts them, atomically: a job id is never only in the worker's memory.
-- Takes ids from the queues in priority order (or starts the id a blocking BLMOVE already moved
-- into a queue's intermediate list, then removes it from there), and, in the same script,
-- writes everything RQ's worker writes when a job starts (execution hash, executions zset,
-- StartedJobRegistry member "<id>:<execution id>", worker state and current job, job
-- status/started_at/worker_name).
-- A job enqueued by rq 1.x (its hash has no `group_id`, which every 2.x and 3.0 producer
-- writes) gets the plain job id as its StartedJobRegistry member instead: that is what rq 1.x
-- writes and the only member its readers (StartedJobRegistry.cleanup, get_job_ids, `in`)
-- understand; 2.12+ and 3.0 read a plain id too (execution id '').
--
-- A popped id goes straight from the queue to the started registry: RQ's LMOVE into the
-- intermediate list followed by LREM from it, inside one atomic script, is the same as LPOP,
-- and LPOP costs one command instead of two (LREM also scans the intermediate list).
--
-- ARGV: 1 prefix, 2 worker name, 3 now (rq timestamp), 4 now (float), 5 now (int),
--       6 job monitoring interval, 7 default timeout, 8 worker key ttl,
--       9 claimed queue ('' = none), 10 claimed id, 11 number of queues N, 12..11+N queue
--       names in priority order, then one execution id per job that may be started (their
--       count is the most jobs this call starts; the claimed job, if any, uses the first).
-- Returns nil when nothing was started, else a flat array of 5 items per started job:
--   queue, job id, heartbeat ttl, {hash fields...}, execution id.
local P, NAME, TS, NOWF = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local NOW = tonumber(ARGV[5])
-- The start time is Redis's clock, read here where the pop happens (issue 16): a time the
-- worker took before its call can be earlier than the enqueue of a job the call pops (the
-- call may wait behind others). ARGV 3-5 remain the fallback where TIME cannot be used
-- (Redis before 3.2 has no effects replication). Each job's started_at is then clamped up to
-- its enqueued_at (see start below).
if redis.replicate_commands and pcall(redis.replicate_commands) then
  local t = redis.call('TIME')
  local sec, usec = tonumber(t[1]), tonumber(t[2])
  -- Days to civil date (H. Hinnant's algorithm), for RQ's %Y-%m-%dT%H:%M:%S.%fZ.
  local z = math.floor(sec / 86400) + 719468
  local rem = sec % 86400
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  TS = string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', year, month, day,
    math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, usec)
  NOWF = string.format('%d.%06d', sec, usec)
  NOW = sec
end
local INTERVAL = tonumber(ARGV[6])
local DEFAULT_TIMEOUT = tonumber(ARGV[7])
local WORKER_TTL = tonumber(ARGV[8])
local NQ = tonumber(ARGV[11])
local FIRST_X = 12 + NQ
local MAX = #ARGV - FIRST_X + 1

local wk = P .. 'worker:' .. NAME
local out = {}
local composites = {}
local started, longest, last_id = 0, 0, nil

-- True when s is valid UTF-8 (what the worker can read back as text).
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 1, 0x80, 0xBF
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else return false end
    if i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local b = s:byte(j)
      if j == i + 1 then
        if b < lo or b > hi then return false end
      elseif b < 0x80 or b > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

local function start(q, id)
  local jk = P .. 'job:' .. id
  if not valid_utf8(id) then
    -- No RQ producer writes such an id, and the worker could not name it back: fail it here,
    -- visibly (status, failed registry, the legacy exc_info field that readers fall back to).
    if redis.call('EXISTS', jk) == 1 then
      redis.call('HSET', jk, 'status', 'failed', 'ended_at', TS,
        'exc_info', 'rqw.errors.InvalidJobError: the job id is not valid UTF-8')
      redis.call('ZADD', P .. 'failed:' .. q, NOW + 31536000, id)
    end
    return false
  end
  local fields = redis.call('HGETALL', jk)
  if #fields == 0 then
    -- The job was deleted after it was enqueued: nothing to run.
    return false
  end
  local timeout, origin, started_at, rq2 = nil, q, TS, false
  for i = 1, #fields, 2 do
    local f = fields[i]
    if f == 'timeout' then timeout = tonumber(fields[i + 1])
    elseif f == 'group_id' then rq2 = true
    -- A producer's clock (the API host's, or the worker that enqueued a dependent) may run
    -- ahead of Redis's: started_at is never before enqueued_at (same fixed-width format, so
    -- the text order is the time order).
    elseif f == 'enqueued_at' and #fields[i + 1] == #TS and fields[i + 1] > TS then started_at = fields[i + 1]
    elseif f == 'origin' and fields[i + 1] ~= '' and valid_utf8(fields[i + 1]) then origin = fields[i + 1] end
  end
  if timeout == nil or timeout == 0 then timeout = DEFAULT_TIMEOUT end
  local ttl
  if timeout > 0 then
    ttl = math.floor(math.min(timeout, INTERVAL)) + 60
  else
    ttl = INTERVAL + 60
  end
  local X = ARGV[FIRST_X + started]
  local composite = id .. ':' .. X
  local ek = P .. 'execution:' .. id .. ':' .. X
  local xk = P .. 'executions:' .. id
  redis.call('HSET', ek, 'id', X, 'job_id', id, 'created_at', NOWF, 'last_heartbeat', NOWF, 'worker_name', NAME)
  redis.call('EXPIRE', ek, ttl)
  redis.call('ZADD', xk, NOW + ttl + 60, X)
  redis.call('EXPIRE', xk, ttl + 60)
  redis.call('ZADD', P .. 'wip:' .. origin, NOW + ttl, rq2 and composite or id)
  redis.call('HSET', jk, 'last_heartbeat', TS, 'status', 'started', 'started_at', started_at, 'worker_name', NAME)
  redis.call('PERSIST', jk)
  started = started + 1
  composites[started] = composite
  if ttl > longest then longest = ttl end
  last_id = id
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = q, id, ttl, fields, X
  return true
end

if ARGV[9] ~= '' then
  redis.call('LREM', P .. 'queue:' .. ARGV[9] .. ':intermediate', 1, ARGV[10])
  start(ARGV[9], ARGV[10])
end
for i = 12, 11 + NQ do
  if started >= MAX then break end
  local qk = P .. 'queue:' .. ARGV[i]
  -- Skip over ids of deleted jobs, a bounded number per call.
  local skipped = 0
  while started < MAX and skipped < 100 do
    local id = redis.call('LPOP', qk)
    if not id then break end
    if not start(ARGV[i], id) then skipped = skipped + 1 end
  end
end
if started == 0 then
  return nil
end
-- The worker record, once per call: busy, its current job (the last one started; rq 2.x
-- shows one), the executions set (rq 3.0) and the TTLs.
local wek = wk .. ':executions'
redis.call('SADD', wek, unpack(composites))
redis.call('EXPIRE', wek, math.max(longest + 60, WORKER_TTL))
redis.call('HSET', wk, 'state', 'busy', 'current_job', last_id, 'current_job_working_time', '0', 'last_heartbeat', TS)
redis.call('EXPIRE', wk, math.max(longest, WORKER_TTL))
return out
