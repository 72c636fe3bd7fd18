-- RQ 2.12+'s RELEASE_LOCK_SCRIPT for each of a scheduler's queue locks (DEL only while the
-- lock still holds our name, so another scheduler's lock is never removed), then the
-- scheduler's hash is deleted (RQScheduler.register_death).
--
-- ARGV: 1 owner (scheduler name), 2 scheduler hash key, 3.. lock keys.
-- Returns the number of locks released.
local released = 0
for i = 3, #ARGV do
  if redis.call('GET', ARGV[i]) == ARGV[1] then
    redis.call('DEL', ARGV[i])
    released = released + 1
  end
end
redis.call('DEL', ARGV[2])
return released
