-- One heartbeat for the worker and all its running executions, in one round trip.
-- Mirrors Worker.heartbeat + maintain_heartbeats: worker last_heartbeat/TTL, execution hash
-- and TTL, StartedJobRegistry score (XX), executions zset, job last_heartbeat. A job hash
-- deleted while it runs is not resurrected (RQ's rq#1450 fix).
--
-- ARGV: 1 prefix, 2 worker name, 3 now (rq timestamp), 4 now (int), 5 now (float),
--       6 worker key ttl, 7 current_job_working_time ('' = leave), then per execution:
--       job id, execution id, queue, heartbeat ttl, its StartedJobRegistry member (as
--       start.lua wrote it: "<id>:<execution id>", or the plain id of a job from rq 1.x).
-- Returns -1 when the worker hash has vanished (the caller registers again), else 1.
local P, NAME, TS = ARGV[1], ARGV[2], ARGV[3]
local NOW = tonumber(ARGV[4])
local NOWF = ARGV[5]
local WTTL = tonumber(ARGV[6])
local wk = P .. 'worker:' .. NAME
if redis.call('EXISTS', wk) == 0 then
  return -1
end
redis.call('HSET', wk, 'last_heartbeat', TS)
if ARGV[7] ~= '' then redis.call('HSET', wk, 'current_job_working_time', ARGV[7]) end
local longest = WTTL
for i = 8, #ARGV, 5 do
  local id, x, q, ttl, member = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  local ek = P .. 'execution:' .. id .. ':' .. x
  -- Every write here refreshes one value and is complete by itself. The keys that carry a
  -- job's id or origin were checked by start.lua, but a producer may have replaced one of
  -- them since: redis.pcall, so that such a key costs its own refresh only, never the
  -- heartbeat of the worker and of the other jobs (no command is added).
  if redis.call('EXISTS', ek) == 1 then
    redis.pcall('HSET', ek, 'last_heartbeat', NOWF)
  end
  redis.call('EXPIRE', ek, ttl)
  redis.pcall('ZADD', P .. 'wip:' .. q, 'XX', NOW + ttl, member)
  redis.pcall('ZADD', P .. 'executions:' .. id, NOW + ttl + 60, x)
  redis.call('EXPIRE', P .. 'executions:' .. id, ttl + 60)
  local jk = P .. 'job:' .. id
  if redis.call('EXISTS', jk) == 1 then
    redis.pcall('HSET', jk, 'last_heartbeat', TS)
  end
  if ttl + 60 > longest then longest = ttl + 60 end
end
redis.call('EXPIRE', wk, longest)
redis.call('EXPIRE', wk .. ':executions', longest)
return 1
