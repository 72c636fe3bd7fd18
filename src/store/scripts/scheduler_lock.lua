-- RQ 2.12+'s ACQUIRE_OR_REFRESH_LOCK_SCRIPT (rq/scripts.py) for each of a scheduler's queue
-- locks, in one call, plus the scheduler's hash (RQScheduler.save): GET the lock; empty ->
-- SET <owner> EX <ttl> (acquired); holds <owner> -> EXPIRE <ttl> (refreshed); anything else
-- (another 2.12+ scheduler's name, or a 2.0.0 scheduler's pid) -> left alone (taken).
-- The hash rq:scheduler:<owner> is written (with the same TTL) while at least one lock is
-- held, and deleted when none is.
--
-- ARGV: 1 owner (scheduler name), 2 ttl, 3 scheduler hash key, 4 number N of hash
--       field/value pairs, 5..4+2N the pairs, then the lock keys.
-- Returns one outcome per lock key: 1 acquired, 2 refreshed, 0 taken.
local OWNER, TTL, HK = ARGV[1], ARGV[2], ARGV[3]
local N = tonumber(ARGV[4])
local outcomes, held = {}, 0
for i = 5 + 2 * N, #ARGV do
  local key = ARGV[i]
  local value = redis.call('GET', key)
  if not value then
    redis.call('SET', key, OWNER, 'EX', TTL)
    outcomes[#outcomes + 1] = 1
    held = held + 1
  elseif value == OWNER then
    redis.call('EXPIRE', key, TTL)
    outcomes[#outcomes + 1] = 2
    held = held + 1
  else
    outcomes[#outcomes + 1] = 0
  end
end
if held > 0 and N > 0 then
  redis.call('HSET', HK, unpack(ARGV, 5, 4 + 2 * N))
  redis.call('EXPIRE', HK, TTL)
elseif held == 0 then
  redis.call('DEL', HK)
end
return outcomes
