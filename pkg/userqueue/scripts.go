package userqueue

import "github.com/redis/go-redis/v9"

// The registry's scripts. Each takes Redis TIME itself, so no gateway's
// clock is trusted. Admit and mark run under maxmemory (allow-oom, Redis 7
// script flags): mark only rewrites scores and Admit adds at most one
// member, and a client must be able to subscribe to its existing queues to
// drain a full Redis.

// admitScript: KEYS[1] the user's registry, KEYS[2] the queue's :Q hash;
// ARGV queue, limit, key prefix, stale reservation age ms. Returns 1
// (admitted) or 0 (at the cap).
var admitScript = redis.NewScript(`#!lua flags=allow-oom
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local q = ARGV[1]
if redis.call('ZSCORE', KEYS[1], q) or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZADD', KEYS[1], now, q)
  return 1
end
local limit = tonumber(ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= limit then
  local old = now - tonumber(ARGV[4])
  local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local m = members[i]
    if tonumber(members[i + 1]) < old and redis.call('EXISTS', ARGV[3] .. m .. ':Q') == 0 then
      redis.call('ZREM', KEYS[1], m)
    end
  end
  if redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now, q)
return 1
`)

// markScript: KEYS[i] the registry of ARGV[i]'s owner; sets the score of
// each registered queue to now (XX: never adds).
var markScript = redis.NewScript(`#!lua flags=allow-oom
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now, ARGV[i])
end
return #KEYS
`)

// pruneScript: KEYS[1] the owner's registry, KEYS[2] RSMQ's QUEUES set,
// KEYS[3] the queue's sorted set, KEYS[4] its :Q hash; ARGV queue, idle ms,
// dry run (1/0). Deletes the queue as RSMQ's deleteQueue does (DEL both
// keys, SREM) when it has no message and its last use is older than idle.
var pruneScript = redis.NewScript(`
local q = ARGV[1]
if redis.call('EXISTS', KEYS[4]) == 0 then
  if ARGV[3] ~= '1' then redis.call('ZREM', KEYS[1], q) end
  return 'missing'
end
if redis.call('ZCARD', KEYS[3]) > 0 then
  return 'has_messages'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('ZSCORE', KEYS[1], q)
if last then
  last = tonumber(last)
else
  last = (tonumber(redis.call('HGET', KEYS[4], 'created')) or 0) * 1000
end
if now - last < tonumber(ARGV[2]) then
  return 'recent'
end
if ARGV[3] ~= '1' then
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('SREM', KEYS[2], q)
  redis.call('ZREM', KEYS[1], q)
end
return 'pruned'
`)
