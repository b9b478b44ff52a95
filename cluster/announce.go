package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencehq/presence/presence"
)

// announcer sends the engine's changes to Redis, a pipeline of Lua calls
// per batch: one round trip for however many users changed meanwhile. It
// reads each user's state when it sends, so a burst of changes of one user
// costs one call, and the order of a user's changes cannot be lost.
func (n *Node) announcer() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.wake:
		case <-n.reassert:
			n.doReassert(n.ctx)
		}
		n.flushSettings(n.ctx)
		n.flush(n.ctx)
		n.flushRooms(n.ctx)
	}
}

// pending is one user whose view on this node changed.
type pending struct {
	id       int64
	lastSeen time.Time
}

// flush sends every pending change. While Redis is unreachable it applies
// them to the replica only, so that this node's own viewers stay right; the
// edges are re-asserted when Redis is back.
func (n *Node) flush(ctx context.Context) {
	for {
		n.mu.Lock()
		batch := make([]pending, 0, min(len(n.dirty), batchSize))
		for id, ls := range n.dirty {
			batch = append(batch, pending{id, ls})
			delete(n.dirty, id)
			if len(batch) == batchSize {
				break
			}
		}
		n.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		if err := n.send(ctx, batch); err != nil {
			if ctx.Err() == nil {
				n.setDegraded(err)
			}
			n.applyLocally(batch)
		}
	}
}

// send announces the batch's current views in one pipeline.
func (n *Node) send(ctx context.Context, batch []pending) error {
	nodeKey := n.key("n", n.id)
	cmds, err := n.runScripts(ctx, func(pipe redis.Pipeliner) []*redis.Cmd {
		cmds := make([]*redis.Cmd, len(batch))
		for i, p := range batch {
			v, lastSeen := "", p.lastSeen
			if st, ok := n.engine.LocalState(p.id); ok {
				v = encodeView(st)
			}
			if lastSeen.IsZero() {
				lastSeen = n.clock.Now()
			}
			cmds[i] = announceScript.EvalSha(ctx, pipe, []string{n.userKey(p.id), nodeKey, n.key("online")},
				n.id, p.id, v, lastSeen.UnixMilli(), n.channel, n.id)
		}
		return cmds
	})
	// What a call decided is recorded even when another call of the
	// pipeline failed: the re-assertion would find it done.
	for i, c := range cmds {
		if c.Err() == nil {
			n.recordOrigin(batch[i].id, c)
		}
	}
	if err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	n.stats.announces.Add(int64(len(batch)))
	return nil
}

// recordOrigin persists what this node's call decided: a user's first
// node, last node, or going invisible or back.
func (n *Node) recordOrigin(id int64, c *redis.Cmd) {
	res, err := c.Slice()
	if err != nil || len(res) != 4 {
		return
	}
	if changed, _ := res[0].(int64); changed != 1 {
		return
	}
	n.stats.published.Add(1)
	now, _ := res[2].(string)
	old, _ := res[3].(string)
	a, err := parseAggregate(now)
	if err != nil {
		return
	}
	was, wasHistory := false, false
	if o, err := parseAggregate(old); err == nil {
		was, wasHistory = o.shown(), o.inHistory()
	}
	if n.sessions != nil && a.inHistory() != wasHistory {
		if a.inHistory() {
			n.mu.Lock()
			device := n.devices[id]
			delete(n.devices, id)
			n.mu.Unlock()
			if device == "" {
				device = presence.DeviceUnknown
			}
			n.sessions.RecordSessionStart(id, n.clock.Now(), device)
		} else if a.online {
			n.sessions.RecordSessionEnd(id, n.clock.Now())
		} else {
			n.sessions.RecordSessionEnd(id, a.lastSeen)
		}
	}
	switch {
	case a.shown() == was:
	case a.shown():
		n.rec.RecordStatus(id, true, time.Time{})
	case a.online: // went invisible: last seen frozen now
		n.rec.RecordStatus(id, false, n.clock.Now())
	default:
		n.rec.RecordStatus(id, false, a.lastSeen)
	}
}

// removeEdges removes every edge of node (this one leaving or restarting,
// or a dead one), as of lastSeen, and returns the users who went offline
// when collect is set.
func (n *Node) removeEdges(ctx context.Context, node string, lastSeen time.Time, collect bool) ([]presence.Status, error) {
	nodeKey := n.key("n", node)
	ids, err := n.rdb.SMembers(ctx, nodeKey).Result()
	if err != nil {
		return nil, err
	}
	var offline []presence.Status
	for start := 0; start < len(ids); start += batchSize {
		chunk := ids[start:min(start+batchSize, len(ids))]
		cmds, execErr := n.runScripts(ctx, func(pipe redis.Pipeliner) []*redis.Cmd {
			cmds := make([]*redis.Cmd, len(chunk))
			for i, s := range chunk {
				id, _ := strconv.ParseInt(s, 10, 64)
				cmds[i] = announceScript.EvalSha(ctx, pipe, []string{n.userKey(id), nodeKey, n.key("online")},
					node, id, "", lastSeen.UnixMilli(), n.channel, n.id)
			}
			return cmds
		})
		for i, c := range cmds {
			if c.Err() != nil {
				continue
			}
			id, _ := strconv.ParseInt(chunk[i], 10, 64)
			n.recordOrigin(id, c)
			if !collect {
				continue
			}
			res, _ := c.Slice()
			if len(res) == 4 {
				if changed, _ := res[0].(int64); changed == 1 {
					old, _ := res[3].(string)
					if o, err := parseAggregate(old); err == nil && o.shown() {
						offline = append(offline, o.status(id))
					}
				}
			}
		}
		if execErr != nil {
			return offline, fmt.Errorf("remove edges of %s: %w", node, execErr)
		}
	}
	if node != n.id {
		n.stats.reaped.Add(int64(len(ids)))
	}
	return offline, nil
}

// doReassert re-sends every edge of this node, and removes those Redis
// holds that the node no longer has, then reads the whole truth again:
// Redis came back (perhaps empty), or others took this node for dead.
func (n *Node) doReassert(ctx context.Context) {
	n.stats.reasserts.Add(1)
	local := n.engine.LocalUsers()
	held := map[int64]bool{}
	n.mu.Lock()
	for _, id := range local {
		held[id] = true
		if _, ok := n.dirty[id]; !ok {
			n.dirty[id] = time.Time{}
		}
	}
	n.mu.Unlock()
	if members, err := n.rdb.SMembers(ctx, n.key("n", n.id)).Result(); err == nil {
		n.mu.Lock()
		for _, s := range members {
			if id, err := strconv.ParseInt(s, 10, 64); err == nil && !held[id] {
				if _, ok := n.dirty[id]; !ok {
					n.dirty[id] = time.Time{}
				}
			}
		}
		n.mu.Unlock()
	}
	n.mu.Lock()
	for _, m := range n.engine.LocalRoomMembers() {
		n.dirtyRooms[roomKey{m.Room, m.UserID}] = m.PublicID
	}
	n.mu.Unlock()
	if members, err := n.rdb.SMembers(ctx, n.key("nr", n.id)).Result(); err == nil {
		n.mu.Lock()
		for _, m := range members {
			u, room, _ := strings.Cut(m, "\n")
			if id, err := strconv.ParseInt(u, 10, 64); err == nil {
				if _, ok := n.dirtyRooms[roomKey{room, id}]; !ok {
					n.dirtyRooms[roomKey{room, id}] = ""
				}
			}
		}
		n.mu.Unlock()
	}
	n.flushSettings(ctx)
	n.flush(ctx)
	n.flushRooms(ctx)
	if err := n.resync(ctx); err != nil && ctx.Err() == nil {
		n.setDegraded(err)
	}
}

// applyLocally shows this node's own view of each user in the replica,
// while the cluster cannot be asked.
func (n *Node) applyLocally(batch []pending) {
	for _, p := range batch {
		st, ok := n.engine.LocalState(p.id)
		var a aggregate
		if ok {
			a = aggregateOf(st)
		} else {
			a = n.offline(p.id, p.lastSeen)
		}
		n.apply(n.id, p.id, -1, a, true)
	}
}

// offline is the aggregate of a user gone offline at lastSeen (now when
// zero), named as the replica last knew them.
func (n *Node) offline(id int64, lastSeen time.Time) aggregate {
	if lastSeen.IsZero() {
		lastSeen = n.clock.Now()
	}
	a := aggregate{mode: presence.ModeOffline, lastSeen: lastSeen}
	n.rmu.RLock()
	if en := n.users[id]; en != nil {
		a.username, a.publicID = en.st.Username, en.st.PublicID
	}
	n.rmu.RUnlock()
	return a
}

// encodeView is how a node's view of a user is stored in Redis: a JSON array
// of strings (mode, since and last activity in Unix milliseconds, status
// text and emoji, visibility, username, public id), which the Lua script
// reads by position.
func encodeView(st presence.Status) string {
	vis := st.Visibility
	if vis == "" {
		vis = presence.VisibleEveryone
	}
	b, _ := json.Marshal([]string{string(st.Mode), strconv.FormatInt(st.Since.UnixMilli(), 10), st.StatusText, st.StatusEmoji,
		string(vis), st.Username, st.PublicID, strconv.FormatInt(st.LastActivity.UnixMilli(), 10)})
	return string(b)
}

// aggregate is a user's presence across nodes, as the Lua script derives
// it: ["1", mode, since, text, emoji, visibility, username, public id,
// last activity] while online, ["0", "offline", last seen, "", "", "",
// username, public id, last seen] after.
type aggregate struct {
	online              bool
	mode                presence.Mode
	since, lastActivity time.Time
	lastSeen            time.Time
	text, emoji         string
	visibility          presence.Visibility
	username, publicID  string
}

func parseAggregate(s string) (aggregate, error) {
	var f []string
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return aggregate{}, err
	}
	if len(f) != 9 {
		return aggregate{}, fmt.Errorf("aggregate has %d fields", len(f))
	}
	ms := func(s string) time.Time {
		v, _ := strconv.ParseInt(s, 10, 64)
		return time.UnixMilli(v).UTC()
	}
	a := aggregate{online: f[0] == "1", mode: presence.Mode(f[1]), text: f[3], emoji: f[4],
		visibility: presence.Visibility(f[5]), username: f[6], publicID: f[7]}
	if a.online {
		a.since, a.lastActivity = ms(f[2]), ms(f[8])
	} else {
		a.lastSeen = ms(f[2])
	}
	return a, nil
}

// aggregateOf is a node's own view as an aggregate.
func aggregateOf(st presence.Status) aggregate {
	vis := st.Visibility
	if vis == "" {
		vis = presence.VisibleEveryone
	}
	return aggregate{online: true, mode: st.Mode, since: st.Since, lastActivity: st.LastActivity,
		text: st.StatusText, emoji: st.StatusEmoji, visibility: vis, username: st.Username, publicID: st.PublicID}
}

// shown reports whether the user counts as online in the database (online
// and not invisible), as a single engine records it.
func (a aggregate) shown() bool { return a.online && a.mode != presence.ModeInvisible }

// inHistory reports whether the user's time now goes into their history
// (as presence.SessionRecorder says: online as their friends see them).
func (a aggregate) inHistory() bool {
	return a.shown() && a.visibility != presence.VisibleNobody
}

// status is the aggregate as a snapshot entry.
func (a aggregate) status(id int64) presence.Status {
	return presence.Status{UserID: id, Username: a.username, PublicID: a.publicID, Since: a.since,
		LastActivity: a.lastActivity, Mode: a.mode, StatusText: a.text, StatusEmoji: a.emoji, Visibility: a.visibility}
}
