package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/presencehq/presence/presence"
)

// Rooms across nodes: a user is in a room while any node holds them there
// (each engine applies its own grace period before it lets go). Redis keeps,
// per (room, user), the set of nodes holding the membership; per room, its
// members (a hash: user → public id); per node, its memberships (for
// reaping); and the set of rooms with members (for a full read). A Lua call
// per membership change of a node publishes only when the user's first
// node enters the room or their last leaves it.

// roomScript records that a node holds (or no longer holds) a user in a
// room, and publishes an entry or exit when the cluster's membership
// changes.
//
// KEYS: 1 the nodes holding the user in the room (set), 2 the room's
// members (hash user → public id), 3 the node's memberships (set of
// "user\nroom"), 4 the rooms with members (set). ARGV: 1 node, 2 user id,
// 3 room, 4 "1" in / "0" out, 5 public id, 6 the rooms channel.
var roomScript = redis.NewScript(`
local had = redis.call('SCARD', KEYS[1])
local member = ARGV[2] .. '\n' .. ARGV[3]
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[3], member)
else
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], member)
end
local has = redis.call('SCARD', KEYS[1])
if (had == 0) == (has == 0) then return 0 end
local pid = ARGV[5]
if has > 0 then
  redis.call('HSET', KEYS[2], ARGV[2], pid)
  redis.call('SADD', KEYS[4], ARGV[3])
else
  pid = redis.call('HGET', KEYS[2], ARGV[2]) or pid
  redis.call('HDEL', KEYS[2], ARGV[2])
  if redis.call('HLEN', KEYS[2]) == 0 then redis.call('SREM', KEYS[4], ARGV[3]) end
end
redis.call('PUBLISH', ARGV[6], (has > 0 and '1' or '0') .. '\n' .. ARGV[2] .. '\n' .. pid .. '\n' .. ARGV[3])
return 1
`)

type roomKey struct {
	room string
	user int64
}

// roomKeys are the KEYS of roomScript for node's membership of user in room.
func (n *Node) roomKeys(node string, user int64, room string) []string {
	u := strconv.FormatInt(user, 10)
	return []string{n.prefix + "rm:" + u + "\n" + room, n.prefix + "r:" + room, n.key("nr", node), n.key("rooms")}
}

// AnnounceRoom implements presence.RoomDirectory: the engine's own
// membership changed; the announcer sends it.
func (n *Node) AnnounceRoom(ev presence.RoomEvent) {
	n.mu.Lock()
	n.dirtyRooms[roomKey{ev.Room, ev.UserID}] = ev.PublicID
	n.mu.Unlock()
	signal(n.wake)
}

// RoomMemberIDs implements presence.RoomDirectory.
func (n *Node) RoomMemberIDs(room string) []int64 {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	out := make([]int64, 0, len(n.rooms[room]))
	for id := range n.rooms[room] {
		out = append(out, id)
	}
	return out
}

// RoomsOf implements presence.RoomDirectory.
func (n *Node) RoomsOf(userID int64) []string {
	n.rmu.RLock()
	out := make([]string, 0, len(n.userRooms[userID]))
	for room := range n.userRooms[userID] {
		out = append(out, room)
	}
	n.rmu.RUnlock()
	slices.Sort(out)
	return out
}

// InRoom implements presence.RoomDirectory.
func (n *Node) InRoom(room string, userID int64) bool {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	_, ok := n.rooms[room][userID]
	return ok
}

// RoomCounts implements presence.RoomDirectory.
func (n *Node) RoomCounts() (rooms, members int) {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	for _, m := range n.rooms {
		members += len(m)
	}
	return len(n.rooms), members
}

// flushRooms sends every pending membership change, or applies it locally
// while Redis is away.
func (n *Node) flushRooms(ctx context.Context) {
	for {
		n.mu.Lock()
		batch := make([]roomKey, 0, min(len(n.dirtyRooms), batchSize))
		pids := make([]string, 0, cap(batch))
		for k, pid := range n.dirtyRooms {
			batch = append(batch, k)
			pids = append(pids, pid)
			delete(n.dirtyRooms, k)
			if len(batch) == batchSize {
				break
			}
		}
		n.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		if !n.degraded.Load() {
			err := n.sendRooms(ctx, batch, pids)
			if err == nil {
				continue
			}
			if ctx.Err() == nil {
				n.setDegraded(err)
			}
		}
		for i, k := range batch {
			n.applyRoom(k.room, k.user, pids[i], n.engine.LocalInRoom(k.room, k.user))
		}
	}
}

func (n *Node) sendRooms(ctx context.Context, batch []roomKey, pids []string) error {
	_, err := n.runScripts(ctx, func(pipe redis.Pipeliner) []*redis.Cmd {
		cmds := make([]*redis.Cmd, len(batch))
		for i, k := range batch {
			in := "0"
			if n.engine.LocalInRoom(k.room, k.user) {
				in = "1"
			}
			cmds[i] = roomScript.EvalSha(ctx, pipe, n.roomKeys(n.id, k.user, k.room), n.id, k.user, k.room, in, pids[i], n.roomsChannel)
		}
		return cmds
	})
	if err != nil {
		return fmt.Errorf("announce rooms: %w", err)
	}
	n.stats.announces.Add(int64(len(batch)))
	return nil
}

// removeRoomEdges takes node out of every room it holds someone in.
func (n *Node) removeRoomEdges(ctx context.Context, node string) error {
	members, err := n.rdb.SMembers(ctx, n.key("nr", node)).Result()
	if err != nil {
		return err
	}
	for start := 0; start < len(members); start += batchSize {
		chunk := members[start:min(start+batchSize, len(members))]
		_, err := n.runScripts(ctx, func(pipe redis.Pipeliner) []*redis.Cmd {
			var cmds []*redis.Cmd
			for _, m := range chunk {
				u, room, ok := strings.Cut(m, "\n")
				id, err := strconv.ParseInt(u, 10, 64)
				if !ok || err != nil {
					continue
				}
				cmds = append(cmds, roomScript.EvalSha(ctx, pipe, n.roomKeys(node, id, room), node, id, room, "0", "", n.roomsChannel))
			}
			return cmds
		})
		if err != nil {
			return fmt.Errorf("remove room edges of %s: %w", node, err)
		}
	}
	return nil
}

// handleRoom applies one published entry or exit: "in\nuser\npublic id\nroom".
func (n *Node) handleRoom(payload string) {
	parts := strings.SplitN(payload, "\n", 4)
	if len(parts) != 4 {
		n.log.Warn("cluster: malformed room event", "payload", payload)
		return
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		n.log.Warn("cluster: malformed room event", "payload", payload)
		return
	}
	n.applyRoom(parts[3], id, parts[2], parts[0] == "1")
}

// applyRoom sets a membership in the replica and, when that changes it,
// tells the engine's room watches.
func (n *Node) applyRoom(room string, id int64, pid string, in bool) {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	_, was := n.rooms[room][id]
	if was == in {
		return
	}
	if in {
		if n.rooms[room] == nil {
			n.rooms[room] = map[int64]string{}
		}
		n.rooms[room][id] = pid
		if n.userRooms[id] == nil {
			n.userRooms[id] = map[string]struct{}{}
		}
		n.userRooms[id][room] = struct{}{}
	} else {
		pid = n.rooms[room][id]
		delete(n.rooms[room], id)
		if len(n.rooms[room]) == 0 {
			delete(n.rooms, room)
		}
		delete(n.userRooms[id], room)
		if len(n.userRooms[id]) == 0 {
			delete(n.userRooms, id)
		}
	}
	n.engine.EmitRoom(presence.RoomEvent{Room: room, UserID: id, PublicID: pid, In: in})
}

// resyncRooms reads every room's members and replaces the replica's.
func (n *Node) resyncRooms(ctx context.Context) error {
	rooms, err := n.rdb.SMembers(ctx, n.key("rooms")).Result()
	if err != nil {
		return fmt.Errorf("resync rooms: %w", err)
	}
	pipe := n.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(rooms))
	for i, room := range rooms {
		cmds[i] = pipe.HGetAll(ctx, n.prefix+"r:"+room)
	}
	if len(rooms) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("resync rooms: %w", err)
		}
	}
	truth := map[string]map[int64]string{}
	for i, room := range rooms {
		for u, pid := range cmds[i].Val() {
			if id, err := strconv.ParseInt(u, 10, 64); err == nil {
				if truth[room] == nil {
					truth[room] = map[int64]string{}
				}
				truth[room][id] = pid
			}
		}
	}
	// Exits first, then entries.
	n.rmu.RLock()
	var gone []roomKey
	for room, members := range n.rooms {
		for id := range members {
			if _, ok := truth[room][id]; !ok {
				gone = append(gone, roomKey{room, id})
			}
		}
	}
	n.rmu.RUnlock()
	for _, k := range gone {
		n.applyRoom(k.room, k.user, "", false)
	}
	for room, members := range truth {
		for id, pid := range members {
			n.applyRoom(room, id, pid, true)
		}
	}
	return nil
}
