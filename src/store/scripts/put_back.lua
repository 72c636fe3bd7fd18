-- Puts back a job id that a blocking wait moved into a queue's intermediate list but the worker
-- has no free slot for (it waited on several queues at once and more than one answered): the id
-- leaves the intermediate list and goes back to the head of its queue, where it was. Only when
-- it is still in the intermediate list (maintenance may have recovered it meanwhile), so it is
-- never queued twice.
-- KEYS: 1 the intermediate list, 2 the queue. ARGV: 1 the job id.
-- Returns 1 when put back, 0 when the id was no longer in the intermediate list, -1 when the
-- queue key is no list any more (a producer's doing; checked before any write, issue 13): the id
-- stays in the intermediate list, where maintenance recovers it as RQ does a stuck one.
local kind = redis.call('TYPE', KEYS[2]).ok
if kind ~= 'list' and kind ~= 'none' then
  return -1
end
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
