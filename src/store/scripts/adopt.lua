-- Looks up executions this worker asked start.lua for, after the call's reply was lost
-- (connection dropped, timeout, Redis restart): which of them did start? Each one found gets
-- its heartbeat now (StartedJobRegistry score, execution TTLs), as start.lua gave it, so an
-- outage longer than the heartbeat TTL does not make it look abandoned to another worker
-- between this lookup and the worker's next heartbeat. Nothing else is written.
--
-- An execution started when "<id>:<execution id>" is in the worker's executions set
-- (start.lua adds every one it starts) and still in the StartedJobRegistry of the job's
-- origin (finish.lua and RQ's abandoned-job cleanup remove it from there), under the member
-- start.lua gave it: "<id>:<execution id>", or the plain id of a job enqueued by rq 1.x. Those are the
-- jobs the worker owns and must run; an id not found was never started (the script did not
-- run, or that slot of the batch found no job), so it is still in its queue if it exists.
--
-- ARGV: 1 prefix, 2 worker name, 3 job monitoring interval, 4 number of queues N,
--       5..4+N the worker's queues (where to look when a hash has no usable origin),
--       5+N default job timeout, then the execution ids asked for.
-- Returns nil when none started, else start.lua's reply: 5 items per started job
--   queue, job id, heartbeat ttl, {hash fields...}, execution id.
local P, NAME = ARGV[1], ARGV[2]
local INTERVAL = tonumber(ARGV[3])
local NQ = tonumber(ARGV[4])
local DEFAULT_TIMEOUT = tonumber(ARGV[5 + NQ])
local wanted = {}
for i = 6 + NQ, #ARGV do wanted[ARGV[i]] = true end
local NOW = nil
if redis.replicate_commands and pcall(redis.replicate_commands) then
  NOW = tonumber(redis.call('TIME')[1])
end

local out = {}
for _, composite in ipairs(redis.call('SMEMBERS', P .. 'worker:' .. NAME .. ':executions')) do
  local id, x = string.match(composite, '^(.*):([^:]*)$')
  if id and wanted[x] then
    local fields = redis.call('HGETALL', P .. 'job:' .. id)
    local origin, timeout = nil, nil
    for i = 1, #fields, 2 do
      if fields[i] == 'origin' and fields[i + 1] ~= '' then origin = fields[i + 1]
      elseif fields[i] == 'timeout' then timeout = tonumber(fields[i + 1]) end
    end
    -- The registry member of this execution in queue q's registry, if it is there.
    local function member_in(q)
      local wip = P .. 'wip:' .. q
      if redis.call('ZSCORE', wip, composite) then return composite end
      if redis.call('ZSCORE', wip, id) then return id end
      return nil
    end
    local queue, member = nil, nil
    if origin then member = member_in(origin) end
    if member then
      queue = origin
    else
      for i = 5, 4 + NQ do
        member = member_in(ARGV[i])
        if member then queue = ARGV[i] break end
      end
    end
    if queue and #fields > 0 then
      -- start.lua's heartbeat TTL (RQ's get_heartbeat_ttl at the start).
      if timeout == nil or timeout == 0 then timeout = DEFAULT_TIMEOUT end
      local ttl
      if timeout > 0 then ttl = math.floor(math.min(timeout, INTERVAL)) + 60 else ttl = INTERVAL + 60 end
      if NOW then
        redis.call('ZADD', P .. 'wip:' .. queue, 'XX', NOW + ttl, member)
        redis.call('EXPIRE', P .. 'execution:' .. id .. ':' .. x, ttl)
        redis.call('ZADD', P .. 'executions:' .. id, 'XX', NOW + ttl + 60, x)
      end
      local n = #out
      out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = queue, id, ttl, fields, x
    end
  end
end
if #out == 0 then
  return nil
end
return out
