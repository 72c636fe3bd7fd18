-- Library (after enqueue.lua): Queue.enqueue_dependents + Job.dependencies_are_met for a
-- parent that has just ended with `parent_status` (finished, failed, stopped). A dependent is
-- enqueued when its hash exists, it is not canceled, the parent counts as met (finished; or
-- failed when the dependent allows dependency failures; never stopped or canceled), and every
-- other parent is finished (or failed, when allowed; missing parents are ignored). It goes
-- straight onto its own queue (2.x style, which every supported version reads, like rqw's
-- finish.lua); the dependents set loses the enqueued ids (DEL when all were enqueued).
-- Returns true when the dependents set still exists afterwards (some dependent stayed), so the
-- caller applies the parent's TTL to it only then (an EXPIRE of a missing key changes nothing).
local function rq_enqueue_dependents(P, parent, parent_status, TS, NOW, default_timeout)
  local dependents_key = P .. 'job:' .. parent .. ':dependents'
  -- Every read of a key a producer controls goes through redis.pcall (issue 13): a key of
  -- the wrong type leaves its dependent where it is (a note says why), never stops the
  -- script after the parent's outcome was written.
  local dependents = redis.pcall('SMEMBERS', dependents_key)
  if rqw_failed(dependents) then
    rqw_notes[#rqw_notes + 1] = dependents_key .. ' is not a set: no dependent enqueued'
    return false
  end
  if #dependents == 0 then return false end
  local enqueued = {}
  for _, dep in ipairs(dependents) do
    local info = redis.pcall('HMGET', P .. 'job:' .. dep, 'status', 'origin', 'enqueue_at_front',
      'allow_dependency_failures', 'data')
    local ok = not rqw_failed(info)
    if not ok then
      rqw_notes[#rqw_notes + 1] = 'dependent ' .. dep .. ' not enqueued: its key is not a hash'
      info = {}
    end
    local allow_failures = info[4] == '1'
    ok = ok and info[5] and info[2] and info[2] ~= '' and info[1] ~= 'canceled'
    if ok and parent_status ~= 'finished' then
      ok = parent_status == 'failed' and allow_failures
    end
    if ok then
      local others = redis.pcall('SMEMBERS', P .. 'job::' .. dep .. ':dependencies')
      if rqw_failed(others) then
        rqw_notes[#rqw_notes + 1] = 'dependent ' .. dep .. ' not enqueued: its dependencies key is not a set'
        others, ok = {}, false
      end
      for _, other in ipairs(others) do
        if other ~= parent then
          local status = redis.pcall('HGET', P .. 'job:' .. other, 'status')
          if rqw_failed(status) or (status and not (status == 'finished' or (allow_failures and status == 'failed'))) then
            ok = false
            break
          end
        end
      end
    end
    if ok and rq_enqueue_job(P, dep, info[2], info[3] == '1', TS, NOW, default_timeout) ~= 'unusable' then
      redis.pcall('ZREM', P .. 'deferred:' .. info[2], dep)
      enqueued[#enqueued + 1] = dep
    end
  end
  if #enqueued == #dependents then
    redis.call('DEL', dependents_key)
  elseif #enqueued > 0 then
    redis.call('SREM', dependents_key, unpack(enqueued))
  end
  return #enqueued < #dependents
end
