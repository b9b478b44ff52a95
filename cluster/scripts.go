package cluster

import "github.com/redis/go-redis/v9"

// announceScript records one node's view of one user (an edge) and
// publishes the user's aggregate when it changes. The aggregate is the view
// of the node that shows the user most present (online, then dnd, away,
// invisible), with the earliest "since" of all nodes; a user no node holds
// is offline. Only a change of what viewers see publishes: a second node
// joining, or one of two leaving, publishes nothing.
//
// KEYS: 1 the user's hash, 2 the node's set of users, 3 the set of online
// users. ARGV: 1 the node whose edge this is, 2 the user id, 3 the node's
// view (a JSON array, see encodeView) or "" to remove the edge, 4 last seen
// in Unix milliseconds (for a removal), 5 the events channel, 6 the node
// that decided the change (the origin; a reaper removes a dead node's
// edges).
//
// It returns {changed, seq, aggregate, previous aggregate}.
var announceScript = redis.NewScript(`
local rank = {online = 4, dnd = 3, away = 2, invisible = 1}
local field = 'n:' .. ARGV[1]
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], field)
  redis.call('SREM', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], field, ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[2])
end
local kv = redis.call('HGETALL', KEYS[1])
local best, br, since, act, old, oldkey = nil, 0, nil, nil, '', ''
for i = 1, #kv, 2 do
  local k = kv[i]
  if string.sub(k, 1, 2) == 'n:' then
    local v = cjson.decode(kv[i + 1])
    local r = rank[v[1]] or 0
    if r > br then best, br = v, r end
    if since == nil or tonumber(v[2]) < tonumber(since) then since = v[2] end
    if act == nil or tonumber(v[8]) > tonumber(act) then act = v[8] end
  elseif k == 'agg' then
    old = kv[i + 1]
  elseif k == 'key' then
    oldkey = kv[i + 1]
  end
end
local agg, key, online
if best then
  online = true
  agg = {'1', best[1], since, best[3], best[4], best[5], best[6], best[7], act}
  key = table.concat({'1', best[1], since, best[3], best[4], best[5], best[6], best[7]}, '\31')
else
  if old == '' then return {0, 0, '', ''} end
  local o = cjson.decode(old)
  if o[1] == '0' then return {0, 0, old, old} end
  online = false
  agg = {'0', 'offline', ARGV[4], '', '', '', o[7], o[8], ARGV[4]}
  key = '0'
end
local enc = cjson.encode(agg)
if key == oldkey then
  redis.call('HSET', KEYS[1], 'agg', enc)
  return {0, 0, enc, old}
end
local t = redis.call('TIME')
local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if seq <= prev then seq = prev + 1 end
seq = string.format('%.0f', seq)
redis.call('HSET', KEYS[1], 'agg', enc, 'key', key, 'seq', seq, 'origin', ARGV[6])
if online then
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('PERSIST', KEYS[1])
else
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[1], 86400)
end
redis.call('PUBLISH', ARGV[5], ARGV[6] .. '\n' .. ARGV[2] .. '\n' .. seq .. '\n' .. enc)
return {1, tonumber(seq), enc, old}
`)

// heartbeatScript refreshes the node's entry in the sorted set of nodes, on
// Redis's clock so that nodes' clocks need not agree, and returns the nodes
// silent for longer than the given time, with their last heartbeat (Unix
// milliseconds).
//
// It also checks that this process still owns the node id: each process
// writes a random token under the id when it starts, so a second process
// started with the same --node-id is noticed (the first then reports the
// clash; their edges would overwrite each other's).
//
// KEYS: 1 the nodes' sorted set, 2 the node id's owner token. ARGV: 1 this
// node, 2 silence in milliseconds after which a node is dead, 3 this
// process's token. It returns {added, clash, dead node, its last
// heartbeat, ...}.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
local owner = redis.call('GET', KEYS[2])
local clash = '0'
if owner and owner ~= ARGV[3] then clash = '1' end
if not owner then redis.call('SET', KEYS[2], ARGV[3]) end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'WITHSCORES')
table.insert(dead, 1, clash)
table.insert(dead, 1, tostring(added))
return dead
`)
