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
--       9 claimed queue ('' = none), 10 claimed id, 11 number of queues N, 12 the longest
--       `data`/`meta` value returned (bytes), 13 '1' to return every field of the hash (a
--       worker with Python horses, which build the job from it) or '0' for only the fields
--       the worker reads, 14..13+N queue names in priority order, then
--       one execution id per job that may be started (their count is the most jobs this call
--       starts; the claimed job, if any, uses the first).
-- Returns nil when nothing was started or refused, else a flat array of 5 items per job:
--   started: queue, job id, heartbeat ttl, {hash fields...}, execution id;
--   refused: queue, job id (or '' for an unusable queue key), 0, reason, ''.
-- Only the fields the worker reads are returned (see KIND), unless ARGV[13] asks for them all
-- (issue 15: the reply is a large part of the call's cost). A `data` or `meta` value longer
-- than ARGV[12] is returned empty, followed by a field "\0rqw.oversize.<name>" holding its
-- length (the hash itself is untouched); so is a field the worker reads (KIND) longer than
-- MAX_READ_FIELD, and any other field returned once those others together would pass
-- ARGV[12]. A hash of more than MAX_HASH_FIELDS fields is refused (RQ writes about 20): the
-- reply of a job stays within about 3 x ARGV[12] + 20 x MAX_READ_FIELD.
--
-- Hostile keys (issue 13): Redis does not roll back a script that fails midway, so nothing
-- here may fail after a job's first write. Every command on a key whose type a producer
-- controls runs through redis.pcall *before* that job's first write, or is that first write:
-- the LPOP of the queue, the job's HGETALL, the ZADDs into rq:executions:<id> and
-- rq:wip:<origin> (moved ahead of the execution hash; the second, one variadic ZADD per
-- origin for all the jobs of the call, undoes the first of each of those jobs when it
-- fails). A job whose key cannot be used is refused alone, the others of the batch start:
-- failed in place (failed registry of its queue, status and exc_info) when its hash is usable,
-- and returned as refused, so the worker names it in its log. No command is added for this.
local P, NAME, TS, NOWF = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local NOW = tonumber(ARGV[5])
-- The first pop comes before anything else (issue 15): a call that finds nothing (a worker
-- woken by a push or pop another worker made, or one polling without client tracking) finds
-- its queues empty with one command and returns before the clock is read or anything is set
-- up (measured: 63,700 instructions for such a call on six queues, against 169,000 with
-- TIME, the set-up and six LPOPs). On one queue that command is the LPOP the loop below
-- would have sent; on several it is an LMPOP (Redis 7.0+), which pops from the first
-- non-empty queue in priority order: its ids are those the loop's first LPOP with a count would have returned
-- (the queues before theirs are empty), and the loop goes on from their queue. (A non-empty
-- LMPOP costs about 13,000 more than an LPOP and saves 7,000 per empty queue before the one
-- it pops.) Where the command fails (LMPOP before Redis 7.0, LPOP's count before 6.2, a queue
-- key of the wrong type) the loop pops every queue itself, as before, and refuses an unusable
-- one. A call that starts a claimed id (the first execution id is its) pops the same way for
-- the jobs it may start besides: when that pop finds nothing it goes on without the loop (a
-- worker woken by one of its blocking pops, with slots to spare: one LMPOP instead of one LPOP
-- per queue).
local FIRST_POP, FIRST_POP_AT, QUEUES_EMPTY = nil, nil, false
do
  local claimed = ARGV[9] ~= ''
  local nq = tonumber(ARGV[11])
  local want = #ARGV - (13 + nq) - (claimed and 1 or 0)
  if want > 0 and nq == 1 then
    local popped
    if want == 1 then
      popped = redis.pcall('LPOP', P .. 'queue:' .. ARGV[14])
    else
      popped = redis.pcall('LPOP', P .. 'queue:' .. ARGV[14], want)
    end
    if not popped then
      if not claimed then return nil end
      QUEUES_EMPTY = true
    elseif type(popped) == 'string' or not popped.err then
      FIRST_POP, FIRST_POP_AT = popped, 14
    end
  elseif want > 0 and nq > 1 then
    local keys = {}
    for i = 1, nq do keys[i] = P .. 'queue:' .. ARGV[13 + i] end
    keys[nq + 1], keys[nq + 2], keys[nq + 3] = 'LEFT', 'COUNT', want
    local popped = redis.pcall('LMPOP', nq, unpack(keys))
    if not popped then
      if not claimed then return nil end
      QUEUES_EMPTY = true
    elseif not popped.err then
      -- (The key is one of those given: exactly one of them matches first.)
      for i = 1, nq do
        if keys[i] == popped[1] then
          FIRST_POP, FIRST_POP_AT = popped[2], 13 + i
          break
        end
      end
    end
  end
end
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
local MAX_FIELD = tonumber(ARGV[12])
local WHOLE = ARGV[13] == '1'
local FIRST_Q = 14
local MAX_HASH_FIELDS = 1000
local MAX_READ_FIELD = 65536
-- How each field is returned and limited (see the header): the fields the worker reads
-- (JobRecord::parse in the protocol crate; group_id for the member form), enqueued_at (read
-- here), and the others (description, exc_info, created_at, ...: returned only for WHOLE).
local PAYLOAD, READ, CALLBACK, GROUP_ID, ENQUEUED_AT, OTHER = 1, 2, 3, 4, 5, 6
-- (One constructor, with the names RQ writes: sized once, no insert loop; this runs on every
-- call. Other names are classified once per call, below.)
local KIND = {data = PAYLOAD, meta = PAYLOAD, group_id = GROUP_ID, enqueued_at = ENQUEUED_AT,
  origin = READ, status = READ, timeout = READ, result_ttl = READ, failure_ttl = READ,
  retries_left = READ, retry_intervals = READ, enqueue_at_front_on_retry = READ,
  repeats_left = READ, repeat_intervals = READ, rate_limit_key = READ, dependency_ids = READ,
  dependency_id = READ, success_callback_name = CALLBACK, success_callback_timeout = CALLBACK,
  failure_callback_name = CALLBACK, failure_callback_timeout = CALLBACK,
  stopped_callback_name = CALLBACK, stopped_callback_timeout = CALLBACK, created_at = OTHER,
  description = OTHER, started_at = OTHER, ended_at = OTHER, last_heartbeat = OTHER,
  worker_name = OTHER, exc_info = OTHER}
local FIRST_X = FIRST_Q + NQ
local TTL_TEXTS = {}
local MAX = #ARGV - FIRST_X + 1
local LPOP_COUNT = true

local wk = P .. 'worker:' .. NAME
local out = {}
local composites = {}
local started, longest, last_id = 0, 0, nil
-- Jobs taken (popped, read, their executions ZADD done) in pop order, and by origin.
local taken, taken_jobs, by_origin, origins = 0, {}, {}, {}

-- True when s is valid UTF-8 (what the worker can read back as text).
local function valid_utf8(s)
  -- ASCII, the common case, from the largest byte (one string.byte call costs less than the
  -- pattern scan, measured), for strings short enough to be returned whole on the stack.
  local n = #s
  if n == 0 or (n <= 256 and math.max(s:byte(1, n)) < 128) then return true end
  if not s:find('[\128-\255]') then return true end
  local i = 1
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

-- A producer's text quoted in exc_info: control characters escaped, at most 200 bytes.
local function quoted(s)
  local cut = ''
  if #s > 200 then cut, s = '...[+' .. (#s - 200) .. ' bytes]', s:sub(1, 200) end
  return (s:gsub('%c', function(c) return string.format('\\x%02x', c:byte()) end)) .. cut
end

-- True when a redis.pcall reply is an error.
local function failed_call(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- A job that cannot be started: failed in place when its hash is usable (failed registry
-- first, so a failure there leaves the hash as it was), and reported to the worker.
local function refuse(q, id, reason, hash_usable)
  if hash_usable then
    local jk = P .. 'job:' .. id
    if failed_call(redis.pcall('ZADD', P .. 'failed:' .. q, NOW + 31536000, id)) then
      reason = reason .. '; its failed registry is unusable too'
    elseif failed_call(redis.pcall('HSET', jk, 'status', 'failed', 'ended_at', TS,
        'exc_info', 'rqw.errors.InvalidJobError: ' .. reason)) then
      redis.pcall('ZREM', P .. 'failed:' .. q, id)
      reason = reason .. '; the job key is not a hash'
    end
  end
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = q, id, 0, reason, ''
end

local function start(q, id)
  local jk = P .. 'job:' .. id
  if not valid_utf8(id) then
    -- No RQ producer writes such an id, and the worker could not name it back as text: fail
    -- it here, visibly (status, failed registry, the legacy exc_info field that readers fall
    -- back to); the worker logs it escaped.
    refuse(q, id, 'the job id is not valid UTF-8', redis.call('EXISTS', jk) == 1)
    return false
  end
  local all = redis.pcall('HGETALL', jk)
  if failed_call(all) then
    refuse(q, id, 'the job key is not a hash (' .. redis.call('TYPE', jk).ok .. ')', false)
    return false
  end
  if #all == 0 then
    -- The job was deleted after it was enqueued: nothing to run.
    return false
  end
  if #all > 2 * MAX_HASH_FIELDS then
    refuse(q, id, 'the job hash has ' .. (#all / 2) .. ' fields, over the ' .. MAX_HASH_FIELDS .. ' rqw reads', true)
    return false
  end
  -- The fields the worker reads (every field for WHOLE), as name/value pairs; a value over
  -- its limit is returned empty, followed by its length in "\0rqw.oversize.<name>".
  local fields, nf, others = {}, 0, 0
  local timeout, origin, started_at, rq2 = nil, q, TS, false
  for i = 1, #all, 2 do
    local f = all[i]
    local kind = KIND[f]
    if kind == nil then
      -- Callback fields are read by the worker too (any of RQ's *_callback_* names).
      kind = f:find('_callback_', 1, true) and CALLBACK or OTHER
      KIND[f] = kind
    end
    if kind < OTHER or WHOLE then
      local v = all[i + 1]
      local len = #v
      local limit, keep = MAX_READ_FIELD, true
      if kind == PAYLOAD then
        limit = MAX_FIELD
      elseif kind == CALLBACK then
        keep = len > 0 or WHOLE
      elseif kind ~= READ then
        -- group_id, enqueued_at and the others: one budget together.
        if kind == GROUP_ID then rq2 = true end
        limit = MAX_FIELD - others - #f
        if len <= limit then others = others + #f + len end
        keep = kind ~= ENQUEUED_AT or WHOLE
      end
      if len > limit then
        fields[nf + 1], fields[nf + 2] = f, ''
        fields[nf + 3], fields[nf + 4] = '\0rqw.oversize.' .. f, tostring(len)
        nf = nf + 4
      else
        if kind == READ then
          if f == 'timeout' then timeout = tonumber(v)
          elseif f == 'origin' then
            if len > 0 and (v == q or valid_utf8(v)) then origin = v end
          end
        elseif kind == ENQUEUED_AT then
          -- A producer's clock (the API host's, or the worker that enqueued a dependent) may
          -- run ahead of Redis's: started_at is never before enqueued_at (same fixed-width
          -- format, so the text order is the time order).
          if len == #TS and v > TS then started_at = v end
        end
        if keep then
          fields[nf + 1], fields[nf + 2] = f, v
          nf = nf + 2
        end
      end
    end
  end
  if timeout == nil or timeout == 0 then timeout = DEFAULT_TIMEOUT end
  local ttl
  if timeout > 0 then
    ttl = math.floor(math.min(timeout, INTERVAL)) + 60
  else
    ttl = INTERVAL + 60
  end
  local X = ARGV[FIRST_X + taken]
  local xk = P .. 'executions:' .. id
  -- The two writes into keys a producer can give the wrong type come first (see the header).
  -- The numbers as text, converted once per call for each value (a Lua number passed to
  -- redis.call is formatted with sprintf every time).
  local texts = TTL_TEXTS[ttl]
  if not texts then
    texts = {tostring(NOW + ttl + 60), tostring(NOW + ttl), tostring(ttl + 60), tostring(ttl)}
    TTL_TEXTS[ttl] = texts
  end
  if failed_call(redis.pcall('ZADD', xk, texts[1], X)) then
    refuse(q, id, 'its executions key ' .. quoted(xk) .. ' is not a sorted set', true)
    return false
  end
  taken = taken + 1
  -- The registry member: "<id>:<execution id>", or the plain id of a job from rq 1.x (header).
  -- Its ZADD is one per origin for the whole call (in commit below).
  local composite = id .. ':' .. X
  local job = {q = q, id = id, ttl = ttl, fields = fields, X = X, xk = xk, texts = texts,
    started_at = started_at, jk = jk, composite = composite, member = rq2 and composite or id}
  taken_jobs[taken] = job
  local group = by_origin[origin]
  if not group then
    group = {}
    by_origin[origin] = group
    origins[#origins + 1] = origin
  end
  group[#group + 1] = job
  return true
end

-- The rest of a taken job's writes: none of them can fail (keys the script just wrote or read
-- as a hash).
local function commit(job)
  local id, X, texts = job.id, job.X, job.texts
  local ek = P .. 'execution:' .. job.composite
  redis.call('EXPIRE', job.xk, texts[3])
  redis.call('HSET', ek, 'id', X, 'job_id', id, 'created_at', NOWF, 'last_heartbeat', NOWF, 'worker_name', NAME)
  redis.call('EXPIRE', ek, texts[4])
  redis.call('HSET', job.jk, 'last_heartbeat', TS, 'status', 'started', 'started_at', job.started_at, 'worker_name', NAME)
  redis.call('PERSIST', job.jk)
  started = started + 1
  composites[started] = job.composite
  if job.ttl > longest then longest = job.ttl end
  last_id = id
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = job.q, id, job.ttl, job.fields, X
end

-- A claimed id is started only while it is still in the intermediate list: one that left it
-- (recovered as stuck by maintenance while the worker stalled) is no longer this worker's.
if ARGV[9] ~= '' and redis.pcall('LREM', P .. 'queue:' .. ARGV[9] .. ':intermediate', 1, ARGV[10]) == 1 then
  start(ARGV[9], ARGV[10])
end
for i = FIRST_POP_AT or FIRST_Q, FIRST_Q + NQ - 1 do
  if taken >= MAX or QUEUES_EMPTY then break end
  local qk = P .. 'queue:' .. ARGV[i]
  -- Skip over ids of deleted or refused jobs, a bounded number per call.
  -- Ids are popped as many at a time as jobs may still start (LPOP with a count, Redis 6.2+:
  -- one command for the batch, in the queue's order); every id popped is handed to start, in
  -- order, exactly as one popped alone, so an id that does not start is handled the same way
  -- (deleted job: dropped; unusable: refused). A reply shorter than asked means the queue is
  -- now empty. Where LPOP takes no count (Redis before 6.2), one id per LPOP as before.
  local skipped = 0
  while taken < MAX and skipped < 100 do
    local want = MAX - taken
    local ids
    if FIRST_POP then
      -- (The first pop's, above: asked for MAX, or MAX - 1 beside a claimed id, as this one
      -- would have been.)
      ids, FIRST_POP = FIRST_POP, nil
    elseif want > 1 and LPOP_COUNT then
      ids = redis.pcall('LPOP', qk, want)
      if failed_call(ids) and not ids.err:find('WRONGTYPE', 1, true) then
        LPOP_COUNT = false
        want = 1
        ids = redis.pcall('LPOP', qk)
      end
    else
      want = 1
      ids = redis.pcall('LPOP', qk)
    end
    if failed_call(ids) then
      refuse(ARGV[i], '', 'the queue key ' .. qk .. ' is not a list', false)
      break
    end
    if not ids then break end
    if type(ids) ~= 'table' then ids = {ids} end
    for j = 1, #ids do
      if not start(ARGV[i], ids[j]) then skipped = skipped + 1 end
    end
    if #ids < want then break end
  end
end
-- One StartedJobRegistry ZADD per origin for all its jobs (score/member pairs, in pop order).
-- A registry key of the wrong type fails that origin's jobs alone, each undone and refused as
-- a lone ZADD's failure would.
for _, origin in ipairs(origins) do
  local group = by_origin[origin]
  local args = {}
  for k, job in ipairs(group) do
    args[2 * k - 1], args[2 * k] = job.texts[2], job.member
  end
  if failed_call(redis.pcall('ZADD', P .. 'wip:' .. origin, unpack(args))) then
    for _, job in ipairs(group) do
      redis.call('ZREM', job.xk, job.X)
      job.refused = true
      refuse(job.q, job.id, "the StartedJobRegistry of its origin '" .. quoted(origin) .. "' is not a sorted set", true)
    end
  end
end
for k = 1, taken do
  if not taken_jobs[k].refused then commit(taken_jobs[k]) end
end
if started == 0 then
  if #out == 0 then return nil end
  return out
end
-- The worker record, once per call: busy, its current job (the last one started; rq 2.x
-- shows one), the executions set (rq 3.0) and the TTLs.
local wek = wk .. ':executions'
redis.call('SADD', wek, unpack(composites))
redis.call('EXPIRE', wek, math.max(longest + 60, WORKER_TTL))
redis.call('HSET', wk, 'state', 'busy', 'current_job', last_id, 'current_job_working_time', '0', 'last_heartbeat', TS)
redis.call('EXPIRE', wk, math.max(longest, WORKER_TTL))
return out
