package rsmq

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// This file holds every key name and every Lua script of the package: the
// stored format of RSMQ.md in one place. Key names travel as KEYS, numbers and
// other values as ARGV. Every script reads "now" from Redis TIME, as Node rsmq
// does, so all clients share one clock.
//
// # Running at maxmemory
//
// Redis with maxmemory-policy noeviction refuses, once full, every script
// whose first write could grow memory. The scripts that drain queues
// (receive, pop, return, change visibility, delete, and the dead-letter move
// inside receive) start with luaAllowOOM, so consumers keep emptying a full
// Redis and memory comes back; their growth is a few small fields (rc, fr,
// totalrecv) while they free whole messages. Send keeps Redis's refusal, and
// create writes only when the queue is missing, so subscribing to an existing
// queue works at maxmemory but creating a new one does not.

// DefaultNamespace is the key namespace used when Options.Namespace is empty.
const DefaultNamespace = "rsmq"

// queuesKey is the set of queue names.
func (c *Client) queuesKey() string { return c.prefix + "QUEUES" }

// hashKey is the queue's hash: attributes, counters, bodies, id:rc, id:fr.
func (c *Client) hashKey(qname string) string { return c.prefix + qname + ":Q" }

// zsetKey is the queue's sorted set: member id, score = visible-at ms.
func (c *Client) zsetKey(qname string) string { return c.prefix + qname }

// KeyspaceChannel returns the keyspace-notification channel of the queue's
// sorted set in database db: "__keyspace@<db>__:<ns>:<qname>". With Redis's
// notify-keyspace-events holding K and z (see KeyspaceNotifications), every
// send publishes "zadd" on it, Node rsmq's without realtime too.
func (c *Client) KeyspaceChannel(db int, qname string) string {
	return "__keyspace@" + strconv.Itoa(db) + "__:" + c.zsetKey(qname)
}

// KeyeventChannel returns the channel on which Redis announces every ZADD
// in database db when notify-keyspace-events holds E and z:
// "__keyevent@<db>__:zadd", the key as the message. QueueOfKey maps such a
// key back to its queue.
func KeyeventChannel(db int) string { return "__keyevent@" + strconv.Itoa(db) + "__:zadd" }

// QueueOfKey returns the queue whose sorted set is key ("<ns>:<qname>"),
// or false for a key that is not one of this namespace's queues.
func (c *Client) QueueOfKey(key string) (string, bool) {
	q, ok := strings.CutPrefix(key, c.prefix)
	if !ok || ValidateQueueName(q) != nil {
		return "", false
	}
	return q, true
}

// RealtimeChannel returns the channel on which sends publish the queue's
// size when Options.Realtime is set: "<ns>:rt:<qname>".
func (c *Client) RealtimeChannel(qname string) string { return c.prefix + "rt:" + qname }

// luaAllowOOM is the shebang of the drain scripts: it must be their first
// line. Redis 7 runs a script with flags=allow-oom even above maxmemory.
const luaAllowOOM = "#!lua flags=allow-oom"

// luaNow sets t (Redis TIME) and ts (ms), as Node computes them.
const luaNow = `
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaQueue sets q to the queue's {vt, delay, maxsize} and returns missing
// when one of them is absent, as Node's _getQueue answers queueNotFound.
func luaQueue(missing string) string {
	return `
local q = redis.call('HMGET', KEYS[1], 'vt', 'delay', 'maxsize')
if not q[1] or not q[2] or not q[3] then return ` + missing + ` end
`
}

// Script status codes shared with Go.
const (
	stNotFound = -1
	stTooLong  = -2 // send
	// stSendCorrupt: send batch, the item's queue has unusable keys.
	stSendCorrupt = -3
	stCorrupt     = -2 // receive, return: the queue's keys are unusable
)

// createScript: KEYS hash, QUEUES; ARGV vt, delay, maxsize, qname.
// Like Node's MULTI of five HSETNX; the queue exists when the first set nothing.
// Returns 1 when created, 0 when it existed. A queue with all five fields
// returns 0 before any write: the HSETNX would set nothing, and a script
// that writes nothing runs even when Redis is at maxmemory.
var createScript = redis.NewScript(luaNow + `
local have = redis.call('HMGET', KEYS[1], 'vt', 'delay', 'maxsize', 'created', 'modified')
if have[1] and have[2] and have[3] and have[4] and have[5] then return 0 end
local created = redis.call('HSETNX', KEYS[1], 'vt', ARGV[1])
redis.call('HSETNX', KEYS[1], 'delay', ARGV[2])
redis.call('HSETNX', KEYS[1], 'maxsize', ARGV[3])
redis.call('HSETNX', KEYS[1], 'created', t[1])
redis.call('HSETNX', KEYS[1], 'modified', t[1])
if created == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[4])
return 1
`)

// luaAttrs returns the reply of getQueueAttributes: HMGET of the seven
// attributes, ZCARD, and ZCOUNT from s*1000 (Node counts hidden messages from
// the whole second) to +inf.
const luaAttrs = `
local a = redis.call('HMGET', KEYS[1], 'vt', 'delay', 'maxsize', 'totalrecv', 'totalsent', 'created', 'modified')
if not a[1] then return {-1} end
return {1, a[1], a[2], a[3], a[4] or '0', a[5] or '0', a[6] or '0', a[7] or '0',
	redis.call('ZCARD', KEYS[2]), redis.call('ZCOUNT', KEYS[2], t[1] .. '000', '+inf')}
`

// attrsScript: KEYS hash, zset.
var attrsScript = redis.NewScript(luaNow + luaAttrs)

// setAttrsScript: KEYS hash, zset; ARGV vt, delay, maxsize ("" = unchanged).
// Queue must exist; sets modified = s and the given attributes, then returns
// the attributes.
var setAttrsScript = redis.NewScript(luaNow + luaQueue("{-1}") + `
redis.call('HSET', KEYS[1], 'modified', t[1])
local names = {'vt', 'delay', 'maxsize'}
for i = 1, 3 do
	if ARGV[i] ~= '' then redis.call('HSET', KEYS[1], names[i], ARGV[i]) end
end
` + luaAttrs)

// sendScript: KEYS hash, zset; ARGV id, body, delay (-1 = queue's),
// UTF-16 length, realtime ("1"/"0"), realtime channel, durable ("1"/"0"),
// ttl seconds (0 = none), status ttl seconds (0 = leave the queue's
// "wsmq:status" as it is, else set it: delivery status on), receipts
// stream cap (0 = leave "wsmq:receipts" as it is, else set it: the
// delivery receipts stream on, see receipts.go).
//
// A ttl stores the field "<id>:exp" = send time + ttl (ms, Redis time) in the
// queue's hash, beside the body; Node rsmq never reads it (see expiryField).
//
// Idempotent: the id is fixed by the client before the first attempt, so a
// retried attempt finds the id field and returns 2 without a second ZADD,
// totalsent increment or PUBLISH. Returns {status, TIME s, TIME us}; status 1
// stored, 2 already stored, -1 queue not found, -2 message too long.
//
// Durable: a retry that finds the id stored makes a write that changes
// nothing but is replicated (HINCRBY totalsent 0), so the WAIT that follows
// on its connection waits for a replication offset past the first write.
// Without it WAIT would count replicas for that connection's last write
// only, which may precede the message (a new connection after a failover
// has none), and could confirm a message no replica holds.
var sendScript = redis.NewScript(luaNow + `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
	if ARGV[7] == '1' then redis.call('HINCRBY', KEYS[1], 'totalsent', 0) end
	return {2, t[1], t[2]}
end
` + luaQueue("{-1, t[1], t[2]}") + `
local maxsize = tonumber(q[3])
if maxsize ~= -1 and tonumber(ARGV[4]) > maxsize then return {-2, t[1], t[2]} end
local delay = tonumber(ARGV[3])
if delay < 0 then delay = tonumber(q[2]) end
redis.call('ZADD', KEYS[2], ts + delay * 1000, ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[8])
if ttl and ttl > 0 then redis.call('HSET', KEYS[1], ARGV[1] .. ':exp', ts + ttl * 1000) end
if ARGV[9] and ARGV[9] ~= '0' then redis.call('HSET', KEYS[1], 'wsmq:status', ARGV[9]) end
if ARGV[10] and ARGV[10] ~= '0' then redis.call('HSET', KEYS[1], 'wsmq:receipts', ARGV[10]) end
redis.call('HINCRBY', KEYS[1], 'totalsent', 1)
if ARGV[5] == '1' then
	redis.call('PUBLISH', ARGV[6], redis.call('ZCARD', KEYS[2]))
end
return {1, t[1], t[2]}
`)

// sendManyScript is sendScript for many messages of one or more queues in
// one call: what SendBatch runs (in chunks of sendChunk messages).
// KEYS hash_1, zset_1, ..., hash_n, zset_n (n queues); ARGV realtime
// ("1"/"0"), durable ("1"/"0"), status ttl and receipts stream cap (as
// sendScript), then the n realtime channels, then per message six values:
// queue index (1..n), id, body, delay (-1 = queue's), UTF-16 length, ttl.
//
// Per queue, the attributes are read once, totalsent is increased once by
// the messages stored and the realtime PUBLISH (the final ZCARD) is sent
// once; TIME is read once. Each message is stored exactly as sendScript
// stores it, and is idempotent the same way (an id already stored answers 2
// and changes nothing; durable makes that answer write a replicated no-op),
// except that the queue and length checks come first and the body's
// HSETNX is the idempotence check.
// Returns {TIME s, TIME us, status of message 1, ...} with sendScript's
// statuses, and -3 for an item whose queue's keys are unusable (wrong
// types, a non-numeric delay or maxsize): that queue's items fail alone.
var sendManyScript = redis.NewScript(luaNow + luaChecks + `
local nq = #KEYS / 2
local rt, durable, status, receipts = ARGV[1] == '1', ARGV[2] == '1', ARGV[3], ARGV[4]
local out = {t[1], t[2]}
local attrs, stored = {}, {}
local first = 5 + nq
for k = first, #ARGV, 6 do
	local j = tonumber(ARGV[k])
	local hk, zk, id = KEYS[2 * j - 1], KEYS[2 * j], ARGV[k + 1]
	local q = attrs[j]
	if q == nil then
		-- A queue whose keys are unusable fails its own items only: this
		-- call carries other queues' messages too, and an error raised
		-- here would abort them half-written.
		q = redis.pcall('HMGET', hk, 'vt', 'delay', 'maxsize')
		if errOf(q) then
			q = 'bad'
		elseif not q[1] or not q[2] or not q[3] then
			q = false
		elseif not tonumber(q[2]) or not tonumber(q[3]) then
			q = 'bad'
		end
		attrs[j] = q
	end
	if not q then
		out[#out + 1] = -1
	elseif q == 'bad' then
		out[#out + 1] = -3
	elseif tonumber(q[3]) ~= -1 and tonumber(ARGV[k + 4]) > tonumber(q[3]) then
		out[#out + 1] = -2
	elseif redis.call('HSETNX', hk, id, ARGV[k + 2]) == 0 then
		-- Stored by an earlier attempt of this call: nothing more.
		if durable then redis.call('HINCRBY', hk, 'totalsent', 0) end
		out[#out + 1] = 2
	else
		local delay = tonumber(ARGV[k + 3])
		if delay < 0 then delay = tonumber(q[2]) end
		local z = redis.pcall('ZADD', zk, ts + delay * 1000, id)
		if errOf(z) then
			-- The zset has the wrong type: the queue's first ZADD of this
			-- call, so the body just written is its only write; undo it.
			redis.call('HDEL', hk, id)
			attrs[j] = 'bad'
			out[#out + 1] = -3
		else
			local ttl = tonumber(ARGV[k + 5])
			if ttl and ttl > 0 then redis.call('HSET', hk, id .. ':exp', ts + ttl * 1000) end
			stored[j] = (stored[j] or 0) + 1
			out[#out + 1] = 1
		end
	end
end
for j = 1, nq do
	local n = stored[j]
	if n then
		local hk = KEYS[2 * j - 1]
		if status ~= '0' then redis.call('HSET', hk, 'wsmq:status', status) end
		if receipts ~= '0' then redis.call('HSET', hk, 'wsmq:receipts', receipts) end
		redis.call('HINCRBY', hk, 'totalsent', n)
		if rt then redis.call('PUBLISH', ARGV[4 + j], redis.call('ZCARD', KEYS[2 * j])) end
	end
end
return out
`)

// luaChecks defines helpers of the scripts that must not fail on foreign or
// corrupt data: a runtime error would abort a multi-queue script half-way,
// after earlier queues were already changed.
//   - isID(id): the id has the RSMQ form ^[a-zA-Z0-9:]{32}$.
//   - isCount(v): v is absent or a decimal integer HINCRBY accepts.
//   - typeIs(key, want): the key holds want or nothing.
//   - errOf(r): the error text of a redis.pcall reply, or nil.
const luaChecks = `
local function isID(id)
	return #id == 32 and not string.find(id, '[^%w:]')
end
local function isCount(v)
	return not v or (#v <= 18 and string.match(v, '^%-?%d+$') ~= nil)
end
local function typeIs(key, want)
	local ty = redis.call('TYPE', key).ok
	return ty == want or ty == 'none'
end
local function errOf(r)
	if type(r) == 'table' and r.err then return r.err end
	return nil
end
`

// Reasons of a rejected message, shared with Go.
const (
	reasonID      = "invalid id"
	reasonRC      = "rc is not an integer"
	reasonFR      = "fr is not a number"
	reasonNoDLQ   = "dead-letter queue unusable"
	rejectMinHide = 30 // seconds a rejected message that cannot move is hidden, at least
)

// Expiry, shared with Go: the field suffix of a message's expiry and the
// queue hash field that says what receive does with an expired message.
const (
	expirySuffix = ":exp"         // "<id>:exp" = expiry, unix ms (Redis time)
	expiredField = "wsmq:expired" // ExpiredToDLQ (default when absent) or ExpiredDelete
)

// Orphan sweep of receive: a queue's hash holds at most queueOwnFields
// fields of its own (vt, delay, maxsize, created, modified, totalsent,
// totalrecv, wsmq:expired, wsmq:status, wsmq:receipts); an empty queue
// with more is swept orphanSweepCount fields (HSCAN COUNT) at a time.
const (
	queueOwnFields   = 10
	orphanSweepCount = 100
)

// luaReceiveOne defines receiveOne(hash, zset, dlq hash, dlq zset, QUEUES,
// vt (-1 = queue's), max, maxReceiveCount (0 = none), dlq name).
//
// Each of up to max visible messages is received as Node's receiveMessage
// does (score ts+vt*1000, totalrecv+1, rc+1, fr = ts on the first receive),
// except that:
//
//   - a message whose new rc would exceed maxReceiveCount moves to the
//     dead-letter queue (created with the source's attributes when missing);
//
//   - a malformed message (id not of the RSMQ form, rc not an integer, fr
//     not a number) is rejected: it moves to the dead-letter queue as well
//     (body only, so it starts there with a clean rc), or, without a usable
//     dead-letter queue, is hidden for the vt (at least rejectMinHide) so it
//     cannot block the head of the queue.
//
//   - a message whose "<id>:exp" is at or before now is expired: never
//     received, it moves to the dead-letter queue, or is deleted when the
//     queue's "wsmq:expired" field is "delete" or no dead-letter queue is
//     usable. An "<id>:exp" that is not a number is ignored.
//
// Returns {1, next visible score or '0', {id, body, rc, fr, ...}, {dead ids},
// ts, {rejected id, reason, moved (1/0), ...}, {expired id, moved (1/0),
// ...}}, {-1} when the queue does not
// exist, or {-2, reason} when the queue's own keys are unusable (wrong type,
// non-numeric vt). It never raises an error.
var luaReceiveOne = luaChecks + luaReceipt + `
local function receiveOne(kh, kz, kdh, kdz, kq, vtArg, maxArg, mrcArg, dlqName, stPrefix)
	local q = redis.pcall('HMGET', kh, 'vt', 'delay', 'maxsize', 'wsmq:expired', 'wsmq:status', 'wsmq:receipts')
	if errOf(q) then return {-2, 'queue hash: ' .. errOf(q)} end
	if not q[1] or not q[2] or not q[3] then return {-1} end
	local vt = tonumber(vtArg)
	if vt < 0 then vt = tonumber(q[1]) end
	if not vt then return {-2, 'queue attribute vt is not a number'} end
	local mrc = tonumber(mrcArg)
	local raw = redis.pcall('ZRANGEBYSCORE', kz, '-inf', ts, 'WITHSCORES', 'LIMIT', 0, tonumber(maxArg))
	if errOf(raw) then return {-2, 'queue zset: ' .. errOf(raw)} end
	local ids, scores = {}, {}
	for i = 1, #raw, 2 do
		ids[#ids + 1] = raw[i]
		scores[raw[i]] = tonumber(raw[i + 1])
	end
	local msgs, dead, rejected, expired = {}, {}, {}, {}
	local stTTL, rcMax = tonumber(q[5] or ''), tonumber(q[6] or '')
	-- status records id's final state when the queue has status on, and
	-- appends a change of state to the receipts stream when it has that on.
	local function status(id, word, rc, reason)
		if stTTL and stTTL > 0 and stPrefix then
			local w = word
			if reason then w = word .. ':' .. reason end
			redis.call('SET', stPrefix .. id, w, 'EX', math.floor(stTTL))
		end
		if rcMax and rcMax > 0 and stPrefix then receipt(stPrefix, rcMax, id, word, rc, reason) end
	end
	local dlq = nil -- nil: not prepared yet, then true (usable) or false
	local function dlqReady()
		if dlq == nil then
			dlq = kdh ~= nil and kdh ~= kh and typeIs(kdh, 'hash') and typeIs(kdz, 'zset')
			if dlq then
				redis.call('HSETNX', kdh, 'vt', q[1])
				redis.call('HSETNX', kdh, 'delay', q[2])
				redis.call('HSETNX', kdh, 'maxsize', q[3])
				redis.call('HSETNX', kdh, 'created', t[1])
				redis.call('HSETNX', kdh, 'modified', t[1])
				redis.pcall('SADD', kq, dlqName)
			end
		end
		return dlq
	end
	-- moveOut moves id to the dead-letter queue (false when it cannot).
	local function moveOut(id, body)
		if mrc <= 0 or not dlqReady() then
			redis.call('ZADD', kz, ts + math.max(vt, ` + strconv.Itoa(rejectMinHide) + `) * 1000, id)
			return false
		end
		if body then
			redis.call('ZADD', kdz, ts, id)
			redis.call('HSET', kdh, id, body)
			redis.pcall('HINCRBY', kdh, 'totalsent', 1)
		end
		redis.call('ZREM', kz, id)
		redis.call('HDEL', kh, id, id .. ':rc', id .. ':fr', id .. ':exp')
		return true
	end
	local function reject(id, body, reason)
		local moved = moveOut(id, body)
		if moved then status(id, 'dead_lettered', nil, reason) end
		rejected[#rejected + 1] = id
		rejected[#rejected + 1] = reason
		rejected[#rejected + 1] = moved and 1 or 0
	end
	-- expire drops an expired message: to the dead-letter queue, or deleted.
	local function expire(id, body)
		local moved = false
		if q[4] ~= 'delete' and body and dlqReady() then
			redis.call('ZADD', kdz, ts, id)
			redis.call('HSET', kdh, id, body)
			redis.pcall('HINCRBY', kdh, 'totalsent', 1)
			moved = true
		end
		redis.call('ZREM', kz, id)
		redis.call('HDEL', kh, id, id .. ':rc', id .. ':fr', id .. ':exp')
		status(id, 'expired')
		expired[#expired + 1] = id
		expired[#expired + 1] = moved and 1 or 0
	end
	for _, id in ipairs(ids) do
		local rckey, frkey = id .. ':rc', id .. ':fr'
		local f = redis.call('HMGET', kh, id, rckey, frkey, id .. ':exp')
		local body, rc, fr, exp = f[1], f[2], f[3], tonumber(f[4] or '')
		if exp and exp <= ts and isID(id) then
			expire(id, body)
		elseif not isID(id) then
			reject(id, body, '` + reasonID + `')
		elseif not isCount(rc) then
			reject(id, body, '` + reasonRC + `')
		elseif fr and not tonumber(fr) then
			reject(id, body, '` + reasonFR + `')
		elseif mrc > 0 and tonumber(rc or '0') + 1 > mrc then
			if moveOut(id, body) then
				status(id, 'dead_lettered', tonumber(rc or '0'), 'max receive count')
				dead[#dead + 1] = id
			else
				rejected[#rejected + 1] = id
				rejected[#rejected + 1] = '` + reasonNoDLQ + `'
				rejected[#rejected + 1] = 0
			end
		else
			-- ZINCRBY to the same score Node's ZADD sets: its keyspace
			-- event is "zincr", which gateways ignore, so a receive does
			-- not wake the queue's consumers as a send's "zadd" does.
			local sc = scores[id]
			if sc and sc > -2^53 and sc < 2^53 then
				redis.call('ZINCRBY', kz, ts + vt * 1000 - sc, id)
			else -- not finite or too big for an exact increment: as Node
				redis.call('ZADD', kz, ts + vt * 1000, id)
			end
			-- rc + 1 as Node's HINCRBY, from the rc read above (the script
			-- is atomic), in one HSET with fr on the first receive.
			local n = tonumber(rc or '0') + 1
			local first = ts
			if n == 1 then
				redis.call('HSET', kh, rckey, n, frkey, ts)
			else
				redis.call('HSET', kh, rckey, n)
				first = tonumber(fr or '0')
			end
			msgs[#msgs + 1] = id
			msgs[#msgs + 1] = body or ''
			msgs[#msgs + 1] = n
			msgs[#msgs + 1] = first
			if rcMax and rcMax > 0 and stPrefix then receipt(stPrefix, rcMax, id, 'in_flight', n, nil) end
		end
	end
	-- totalrecv once per queue per call, as Node's per-receive HINCRBYs add up.
	if #msgs > 0 then redis.pcall('HINCRBY', kh, 'totalrecv', #msgs / 4) end
	local head = redis.call('ZRANGE', kz, 0, 0, 'WITHSCORES')
	-- An empty queue holds no message, so an "<id>:exp" left in its hash
	-- (by Node's deleteMessage) is an orphan: one bounded HSCAN step removes
	-- some, only when the hash has more fields than a queue's own.
	if not head[1] and redis.call('HLEN', kh) > ` + strconv.Itoa(queueOwnFields) + ` then
		local r = redis.call('HSCAN', kh, 0, 'MATCH', '*` + expirySuffix + `', 'COUNT', ` + strconv.Itoa(orphanSweepCount) + `)
		for i = 1, #r[2], 2 do
			local f = r[2][i]
			if redis.call('HEXISTS', kh, string.sub(f, 1, #f - ` + strconv.Itoa(len(expirySuffix)) + `)) == 0 then
				redis.call('HDEL', kh, f)
			end
		end
	end
	return {1, head[2] or '0', msgs, dead, ts, rejected, expired}
end
`

// receiveScript: KEYS hash, zset[, dlq hash, dlq zset, QUEUES];
// ARGV vt (-1 = queue's), max, maxReceiveCount (0 = none), dlq name,
// status key prefix. One queue's receiveOne.
var receiveScript = redis.NewScript(luaAllowOOM + luaNow + luaReceiveOne + `
return receiveOne(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
`)

// receiveMultiScript: KEYS QUEUES, then per queue hash, zset, dlq hash, dlq
// zset; ARGV vt, maxReceiveCount, then per queue max, dlq name, status key
// prefix. Runs
// receiveOne for each queue in order; returns one reply per queue.
var receiveMultiScript = redis.NewScript(luaAllowOOM + luaNow + luaReceiveOne + `
local out = {}
for i = 0, (#KEYS - 1) / 4 - 1 do
	local k = 2 + i * 4
	out[i + 1] = receiveOne(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[1],
		ARGV[1], ARGV[3 + i * 3], ARGV[2], ARGV[4 + i * 3], ARGV[5 + i * 3])
end
return out
`)

// popScript: KEYS hash, zset. Node's popMessage: receive the first visible
// message, then delete it. Returns {1, id, body, rc, fr}, {0} when none is
// visible, {-1} when the queue does not exist.
var popScript = redis.NewScript(luaAllowOOM + luaNow + luaQueue("{-1}") + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ts, 'LIMIT', 0, 1)
if #ids == 0 then return {0} end
local id = ids[1]
redis.call('HINCRBY', KEYS[1], 'totalrecv', 1)
local body = redis.call('HGET', KEYS[1], id) or ''
local rc = redis.call('HINCRBY', KEYS[1], id .. ':rc', 1)
local fr = ts
if rc ~= 1 then fr = tonumber(redis.call('HGET', KEYS[1], id .. ':fr') or '0') end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[1], id, id .. ':rc', id .. ':fr', id .. ':exp')
return {1, id, body, rc, fr}
`)

// changeVisScript: KEYS hash, zset; ARGV id, vt. Queue must exist; sets the
// score of an existing member to ts+vt*1000. Returns 1, 0 (no such message)
// or -1 (no queue).
var changeVisScript = redis.NewScript(luaAllowOOM + luaNow + luaQueue("-1") + `
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], ts + tonumber(ARGV[2]) * 1000, ARGV[1])
return 1
`)

// luaDeleteReceipts defines deleteReceipts(hash, zset, first, last, word,
// status prefix): for ARGV[first..last] as id, rc pairs, deletes each message
// that still exists with stored rc equal to its receipt's rc, and, when the
// queue has status on ("wsmq:status" = seconds), records word as its
// delivery status for that long, and when it has the receipts stream on
// ("wsmq:receipts" = cap) appends the change to it (one HMGET per queue
// when both are off). Returns how many were deleted,
// or nil and a reason when the queue's keys have the wrong type (nothing
// is then touched).
const luaDeleteReceipts = luaChecks + luaReceipt + `
local function deleteReceipts(kh, kz, first, last, word, stPrefix)
	-- The first read of each key is a pcall: a key of the wrong type fails
	-- it before anything is written (cheaper than a TYPE per key).
	local on = redis.pcall('HMGET', kh, 'wsmq:status', 'wsmq:receipts')
	if errOf(on) then return nil, 'queue keys have the wrong type' end
	local stTTL, rcMax = tonumber(on[1] or ''), tonumber(on[2] or '')
	if stTTL and stTTL <= 0 then stTTL = nil end
	if rcMax and rcMax <= 0 then rcMax = nil end
	local n = 0
	for i = first, last, 2 do
		local id = ARGV[i]
		if (redis.call('HGET', kh, id .. ':rc') or '0') == ARGV[i + 1] then
			-- ZREM's answer says whether the message is still there; its
			-- pcall catches a zset of the wrong type at this queue's first
			-- write, before anything changed.
			local removed = redis.pcall('ZREM', kz, id)
			if errOf(removed) then return nil, 'queue keys have the wrong type' end
			if removed == 1 then
				redis.call('HDEL', kh, id, id .. ':rc', id .. ':fr', id .. ':exp')
				if stTTL then redis.call('SET', stPrefix .. id, word, 'EX', math.floor(stTTL)) end
				if rcMax then receipt(stPrefix, rcMax, id, word, tonumber(ARGV[i + 1]), nil) end
				n = n + 1
			end
		end
	end
	return n
end
`

// deleteMultiScript: KEYS per queue hash, zset; ARGV per queue the number of
// receipts, the status word, the status key prefix, then the id, rc pairs. Returns {deleted, {index of a
// skipped queue (0-based), reason, ...}}: a queue whose keys have the wrong
// type is skipped alone.
var deleteMultiScript = redis.NewScript(luaAllowOOM + luaDeleteReceipts + `
local n, a, skipped = 0, 1, {}
for k = 1, #KEYS, 2 do
	local count = tonumber(ARGV[a])
	local d, err = deleteReceipts(KEYS[k], KEYS[k + 1], a + 3, a + 2 + 2 * count, ARGV[a + 1], ARGV[a + 2])
	if d then
		n = n + d
	else
		skipped[#skipped + 1] = (k - 1) / 2
		skipped[#skipped + 1] = err
	end
	a = a + 3 + 2 * count
end
return {n, skipped}
`)

// returnScript: KEYS hash, zset; ARGV id1, rc1, id2, rc2, ... Hands back
// deliveries that were not processed (their consumer went away): each
// message still hidden (score > now) with stored rc equal to its receipt's
// rc becomes visible now, at its send time (so it is received again before
// messages sent after it), and its receive is undone (rc - 1; rc and fr are
// removed when that reaches 0, as before the first receive), so returns do
// not move it toward the dead-letter queue. The guard makes it safe: a
// stale receipt matches no later delivery (rc moved on), a repeated return
// finds the message visible and does nothing, and a delivery whose
// visibility ran out may already be someone else's. Returns {returned, ts},
// or {-2, reason} when the queue's keys have the wrong type.
var returnScript = redis.NewScript(luaAllowOOM + luaNow + luaChecks + `
if not typeIs(KEYS[1], 'hash') or not typeIs(KEYS[2], 'zset') then
	return {-2, 'queue keys have the wrong type'}
end
local n = 0
for i = 1, #ARGV, 2 do
	local id, rc = ARGV[i], ARGV[i + 1]
	local score = redis.call('ZSCORE', KEYS[2], id)
	if score and tonumber(score) > ts and redis.call('HGET', KEYS[1], id .. ':rc') == rc then
		-- Back to its place: visible from its send time (the id's prefix,
		-- µs), so returned messages keep their order ahead of later ones.
		local back = tonumber(string.sub(id, 1, 10), 36)
		if back then back = math.min(ts, math.floor(back / 1000)) else back = ts end
		redis.call('ZADD', KEYS[2], back, id)
		if redis.call('HINCRBY', KEYS[1], id .. ':rc', -1) <= 0 then
			redis.call('HDEL', KEYS[1], id .. ':rc', id .. ':fr')
		end
		n = n + 1
	end
end
return {n, ts}
`)

// changeVisByReceiptScript: KEYS hash, zset; ARGV vt, id1, rc1, id2, rc2, ...
// Sets score ts+vt*1000 of each message that still exists with stored rc
// equal to its receipt's rc. Returns how many changed.
var changeVisByReceiptScript = redis.NewScript(luaAllowOOM + luaNow + `
local score = ts + tonumber(ARGV[1]) * 1000
local n = 0
for i = 2, #ARGV, 2 do
	local id = ARGV[i]
	if redis.call('ZSCORE', KEYS[2], id) and (redis.call('HGET', KEYS[1], id .. ':rc') or '0') == ARGV[i + 1] then
		redis.call('ZADD', KEYS[2], score, id)
		n = n + 1
	end
end
return n
`)

// purgeScript: KEYS hash, zset; ARGV n. Removes up to n messages (the
// lowest scores) with their body, rc and fr fields, keeping the queue's
// attributes and counters. Returns {removed, left}; {-1} when the queue
// does not exist. Bounded per call, so a huge queue never blocks Redis.
var purgeScript = redis.NewScript(luaAllowOOM + luaQueue("{-1}") + `
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
for _, id in ipairs(ids) do
	redis.call('ZREM', KEYS[2], id)
	redis.call('HDEL', KEYS[1], id, id .. ':rc', id .. ':fr')
end
return {#ids, redis.call('ZCARD', KEYS[2])}
`)

// redriveScript: KEYS dlq hash, dlq zset, queue hash, queue zset; ARGV n,
// realtime channel ("" for none). Moves up to n messages of the dead-letter
// queue (lowest scores first) to the queue, visible now, with a fresh
// receive count: each move is in this one script, so a message is in
// exactly one of the two queues at every instant. The moved message keeps
// its id. Returns {moved, left in the dlq}; {-1} when the queue is missing,
// {-3} when the dead-letter queue is missing.
var redriveScript = redis.NewScript(luaNow + `
local q = redis.call('HMGET', KEYS[3], 'vt', 'delay', 'maxsize')
if not q[1] or not q[2] or not q[3] then return {-1} end
local d = redis.call('HMGET', KEYS[1], 'vt', 'delay', 'maxsize')
if not d[1] or not d[2] or not d[3] then return {-3} end
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
local moved = 0
for _, id in ipairs(ids) do
	local body = redis.call('HGET', KEYS[1], id)
	redis.call('ZREM', KEYS[2], id)
	redis.call('HDEL', KEYS[1], id, id .. ':rc', id .. ':fr')
	if body then
		redis.call('ZADD', KEYS[4], ts, id)
		redis.call('HSET', KEYS[3], id, body)
		redis.call('HDEL', KEYS[3], id .. ':rc', id .. ':fr')
		moved = moved + 1
	end
end
if moved > 0 then
	redis.call('HINCRBY', KEYS[3], 'totalsent', moved)
	if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], redis.call('ZCARD', KEYS[4])) end
end
return {moved, redis.call('ZCARD', KEYS[2])}
`)

// oldestScript: KEYS zset. Returns the id with the lowest score (the head of
// the queue) or false.
var oldestScript = redis.NewScript(`
local r = redis.call('ZRANGE', KEYS[1], 0, 0)
return r[1] or false
`)
