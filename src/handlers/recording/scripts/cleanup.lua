-- cleanup: frees the slots of downloads whose in-flight marker is gone (crashed jobs).
-- Shared head of cleanup and acquire. KEYS[1] rec_slots:{b}; ARGV[1] business id text.
local removed = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', 'rec_inflight:' .. ARGV[1] .. ':' .. member) == 0 then
    redis.call('SREM', KEYS[1], member)
    removed = removed + 1
  end
end
