"""The floor of the per-job writes of rqw's start.lua and finish.lua (issue 15).

The same Redis commands, on the same keys with values of the same size, that the two scripts
run for B no-op jobs enqueued by rq and finished with a result entry (result_ttl 500), without
any of the scripts' logic: no checks, no hostile-key handling, no limits, constant scores and
TTLs. Run twice by `benches/script_cost.py --floor`: inside one Lua script each (what a script
that only wrote would cost) and as plain pipelined commands (what the writes cost without
Lua). Not a worker: nothing here is atomic, idempotent or safe against bad input; it only says
how far above the cost of the writes themselves the real scripts are.
"""

# ARGV: rq timestamp, float timestamp, B, then B execution ids. Returns the B job hashes.
START_SCRIPT = r'''
local P, NAME, TS, NOWF = 'rq:', 'script-cost-worker', ARGV[1], ARGV[2]
local ids = redis.call('LPOP', 'rq:queue:default', ARGV[3])
local out, wip, comps = {}, {}, {}
for i, id in ipairs(ids) do
  local x = ARGV[3 + i]
  local jk = P .. 'job:' .. id
  out[i] = redis.call('HGETALL', jk)
  local xk = P .. 'executions:' .. id
  redis.call('ZADD', xk, '1999999999', x)
  redis.call('EXPIRE', xk, '300')
  local c = id .. ':' .. x
  comps[i] = c
  local ek = P .. 'execution:' .. c
  redis.call('HSET', ek, 'id', x, 'job_id', id, 'created_at', NOWF, 'last_heartbeat', NOWF, 'worker_name', NAME)
  redis.call('EXPIRE', ek, '240')
  redis.call('HSET', jk, 'last_heartbeat', TS, 'status', 'started', 'started_at', TS, 'worker_name', NAME)
  redis.call('PERSIST', jk)
  wip[2 * i - 1], wip[2 * i] = '1999999999', c
end
redis.call('ZADD', P .. 'wip:default', unpack(wip))
redis.call('SADD', 'rq:worker:script-cost-worker:executions', unpack(comps))
redis.call('EXPIRE', 'rq:worker:script-cost-worker:executions', '480')
redis.call('HSET', 'rq:worker:script-cost-worker', 'state', 'busy', 'current_job', ids[#ids], 'current_job_working_time', '0', 'last_heartbeat', TS)
redis.call('EXPIRE', 'rq:worker:script-cost-worker', '420')
return out
'''

# ARGV: rq timestamp, then per job: job id, execution id. Returns B.
FINISH_SCRIPT = r'''
local P, NAME, TS = 'rq:', 'script-cost-worker', ARGV[1]
local n = (#ARGV - 1) / 2
local comps, ekeys, fin = {}, {}, {}
for k = 1, n do
  local id, x = ARGV[2 * k], ARGV[2 * k + 1]
  comps[k] = id .. ':' .. x
  ekeys[k] = P .. 'execution:' .. comps[k]
end
redis.call('ZREM', P .. 'wip:default', unpack(comps))
for k = 1, n do
  local id, x = ARGV[2 * k], ARGV[2 * k + 1]
  redis.call('ZREM', P .. 'executions:' .. id, x)
end
redis.call('DEL', unpack(ekeys))
redis.call('SREM', 'rq:worker:script-cost-worker:executions', unpack(comps))
redis.call('HMGET', 'rq:worker:script-cost-worker', 'current_job', 'state', 'birth', 'last_heartbeat', 'death', 'shutdown_requested_date')
redis.call('HINCRBY', 'rq:worker:script-cost-worker', 'successful_job_count', n)
redis.call('HINCRBYFLOAT', 'rq:worker:script-cost-worker', 'total_working_time', '0.064')
redis.call('SRANDMEMBER', 'rq:worker:script-cost-worker:executions')
redis.call('HSET', 'rq:worker:script-cost-worker', 'state', 'idle', 'current_job_working_time', '0')
local deps = {}
for k = 1, n do deps[k] = P .. 'job:' .. ARGV[2 * k] .. ':dependents' end
redis.call('EXISTS', unpack(deps))
for k = 1, n do
  local id, x = ARGV[2 * k], ARGV[2 * k + 1]
  local jk = P .. 'job:' .. id
  redis.call('EXPIRE', jk, '500')
  redis.call('HSET', jk, 'status', 'finished', 'ended_at', TS, 'last_heartbeat', TS)
  local rk = P .. 'results:' .. id
  redis.call('XADD', rk, 'MAXLEN', '~', '10', '*', 'type', '1', 'worker_name', NAME, 'execution_id', x, 'execution_started_at', '1.5', 'execution_ended_at', '1.6')
  redis.call('EXPIRE', rk, '500')
  fin[2 * k - 1], fin[2 * k] = '1999999999', id
end
redis.call('ZADD', P .. 'finished:default', unpack(fin))
return n
'''


def pipeline_start(pipe, ids, xs, ts):
    """Queues START_SCRIPT's commands on `pipe` for the jobs `ids` (at the queue's head)."""
    pipe.lpop("rq:queue:default", len(ids))
    wip, comps = [], []
    for job_id, x in zip(ids, xs):
        jk = "rq:job:" + job_id
        pipe.hgetall(jk)
        xk = "rq:executions:" + job_id
        pipe.execute_command("ZADD", xk, "1999999999", x)
        pipe.execute_command("EXPIRE", xk, "300")
        c = job_id + ":" + x
        comps.append(c)
        ek = "rq:execution:" + c
        pipe.execute_command("HSET", ek, "id", x, "job_id", job_id, "created_at", "1.5", "last_heartbeat", "1.5", "worker_name", "script-cost-worker")
        pipe.execute_command("EXPIRE", ek, "240")
        pipe.execute_command("HSET", jk, "last_heartbeat", ts, "status", "started", "started_at", ts, "worker_name", "script-cost-worker")
        pipe.execute_command("PERSIST", jk)
        wip += ["1999999999", c]
    pipe.execute_command("ZADD", "rq:wip:default", *wip)
    pipe.execute_command("SADD", "rq:worker:script-cost-worker:executions", *comps)
    pipe.execute_command("EXPIRE", "rq:worker:script-cost-worker:executions", "480")
    pipe.execute_command("HSET", "rq:worker:script-cost-worker", "state", "busy", "current_job", ids[-1], "current_job_working_time", "0", "last_heartbeat", ts)
    pipe.execute_command("EXPIRE", "rq:worker:script-cost-worker", "420")


def pipeline_finish(pipe, ids, xs, ts):
    """Queues FINISH_SCRIPT's commands on `pipe`."""
    comps = [i + ":" + x for i, x in zip(ids, xs)]
    pipe.execute_command("ZREM", "rq:wip:default", *comps)
    for i, x in zip(ids, xs):
        pipe.execute_command("ZREM", "rq:executions:" + i, x)
    pipe.execute_command("DEL", *["rq:execution:" + c for c in comps])
    pipe.execute_command("SREM", "rq:worker:script-cost-worker:executions", *comps)
    pipe.execute_command("HMGET", "rq:worker:script-cost-worker", "current_job", "state", "birth", "last_heartbeat", "death", "shutdown_requested_date")
    pipe.execute_command("HINCRBY", "rq:worker:script-cost-worker", "successful_job_count", len(ids))
    pipe.execute_command("HINCRBYFLOAT", "rq:worker:script-cost-worker", "total_working_time", "0.064")
    pipe.execute_command("SRANDMEMBER", "rq:worker:script-cost-worker:executions")
    pipe.execute_command("HSET", "rq:worker:script-cost-worker", "state", "idle", "current_job_working_time", "0")
    pipe.execute_command("EXISTS", *["rq:job:" + i + ":dependents" for i in ids])
    fin = []
    for i, x in zip(ids, xs):
        jk = "rq:job:" + i
        pipe.execute_command("EXPIRE", jk, "500")
        pipe.execute_command("HSET", jk, "status", "finished", "ended_at", ts, "last_heartbeat", ts)
        rk = "rq:results:" + i
        pipe.execute_command("XADD", rk, "MAXLEN", "~", "10", "*", "type", "1", "worker_name", "script-cost-worker", "execution_id", x, "execution_started_at", "1.5", "execution_ended_at", "1.6")
        pipe.execute_command("EXPIRE", rk, "500")
        fin += ["1999999999", i]
    pipe.execute_command("ZADD", "rq:finished:default", *fin)
