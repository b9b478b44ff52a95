package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencehq/presence/presence"
)

// subscriberIdle is how long the subscription may stay quiet before the
// node pings through it.
const subscriberIdle = 15 * time.Second

// subscriber applies the aggregates and settings other nodes publish. When
// its connection is cut it reconnects; the subscription's renewal makes the
// node re-assert its edges and read everything again, since whatever was
// published meanwhile is lost (Redis pub/sub keeps nothing).
func (n *Node) subscriber(ps *redis.PubSub) {
	defer n.wg.Done()
	defer ps.Close()
	for {
		msg, err := ps.ReceiveTimeout(n.ctx, subscriberIdle)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Quiet for a while: make sure the connection is alive (a
			// half-open one would leave the replica silently stale).
			if perr := ps.Ping(n.ctx); perr == nil {
				continue
			} else {
				err = perr
			}
		}
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.setDegraded(err)
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == n.channel {
				signal(n.reassert)
			}
		case *redis.Message:
			switch m.Channel {
			case n.channel:
				n.handleEvent(m.Payload)
			case n.roomsChannel:
				n.handleRoom(m.Payload)
			default:
				n.handleSettings(m.Payload)
			}
		}
	}
}

// handleEvent applies one published aggregate: "origin\nuser\nseq\naggregate".
func (n *Node) handleEvent(payload string) {
	parts := strings.SplitN(payload, "\n", 4)
	if len(parts) != 4 {
		n.log.Warn("cluster: malformed event", "payload", payload)
		return
	}
	id, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	a, err3 := parseAggregate(parts[3])
	if err1 != nil || err2 != nil || err3 != nil {
		n.log.Warn("cluster: malformed event", "payload", payload)
		return
	}
	n.stats.received.Add(1)
	n.apply(parts[0], id, seq, a, false)
}

// apply installs a user's aggregate in the replica and publishes, on the
// node's bus, the events a single engine would have published for the
// change: what others see, and what the user sees of themselves. An
// aggregate older than the replica's is ignored unless force is set (a
// full read); seq -1 keeps the replica's sequence (a local change while
// Redis is away).
func (n *Node) apply(origin string, id int64, seq int64, a aggregate, force bool) {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	n.applyLocked(origin, id, seq, a, force)
}

// applyLocked is apply. Caller must hold n.rmu for writing.
func (n *Node) applyLocked(origin string, id int64, seq int64, a aggregate, force bool) {
	en := n.users[id]
	if en == nil {
		if !a.online {
			return // never seen online here: nothing to take back
		}
		en = &entry{pub: offlineView, self: offlineView}
		n.users[id] = en
	}
	if !force && seq <= en.seq {
		n.stats.stale.Add(1)
		return
	}
	if !force && en.seq > 0 && seq > en.seq+1 {
		// Missed one or more: this aggregate is the whole state, so
		// applying it is the resynchronisation.
		n.stats.gaps.Add(1)
	}
	if seq >= 0 {
		en.seq = seq
	}
	if a.online != en.online {
		if a.online {
			n.count++
		} else {
			n.count--
		}
	}
	en.online = a.online
	if a.online {
		en.st = a.status(id)
		en.offAt = time.Time{}
	} else {
		en.offAt = n.clock.Now()
		en.lastSeen = a.lastSeen
		if a.username != "" {
			en.st.Username, en.st.PublicID = a.username, a.publicID
		}
	}
	self := offlineView
	if a.online {
		self = view{online: a.mode != presence.ModeInvisible, mode: a.mode, text: a.text, emoji: a.emoji}
	}
	pub := self
	if a.mode == presence.ModeInvisible || a.online && a.visibility != presence.VisibleEveryone && a.visibility != "" {
		pub = offlineView
	}
	pubChanged, selfChanged := pub != en.pub, self != en.self
	en.pub, en.self = pub, self
	event := func(v view, scope presence.Scope) presence.Event {
		lastSeen := a.since
		switch {
		case !a.online:
			lastSeen = a.lastSeen
		case !v.online:
			lastSeen = n.clock.Now()
		}
		return presence.Event{UserID: id, Username: en.st.Username, PublicID: en.st.PublicID, Online: v.online,
			LastSeen: lastSeen, Mode: v.mode, StatusText: v.text, StatusEmoji: v.emoji, Scope: scope, Remote: origin != n.id}
	}
	switch {
	case pubChanged && pub == self:
		n.out.Publish(event(pub, presence.ScopeAll))
		return
	case pubChanged:
		n.out.Publish(event(pub, presence.ScopeOthers))
	}
	if selfChanged && pub != self {
		n.out.Publish(event(self, presence.ScopeSelf))
	}
}

// resync reads who is online everywhere and replaces the replica with it,
// publishing the differences. After Redis lost its data (a new epoch),
// every user is taken as read, whatever the sequence numbers say.
func (n *Node) resync(ctx context.Context) error {
	n.stats.resyncs.Add(1)
	epochKey := n.key("epoch")
	fresh := make([]byte, 8)
	rand.Read(fresh)
	if err := n.rdb.SetNX(ctx, epochKey, hex.EncodeToString(fresh), 0).Err(); err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	epoch, err := n.rdb.Get(ctx, epochKey).Result()
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	force := epoch != n.epoch
	n.epoch = epoch
	members, err := n.rdb.SMembers(ctx, n.key("online")).Result()
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	ids := make(map[int64]bool, len(members))
	for _, s := range members {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			ids[id] = true
		}
	}
	n.rmu.RLock()
	for id, en := range n.users {
		if en.online {
			ids[id] = true
		}
	}
	n.rmu.RUnlock()
	all := make([]int64, 0, len(ids))
	for id := range ids {
		all = append(all, id)
	}
	for start := 0; start < len(all); start += 1000 {
		chunk := all[start:min(start+1000, len(all))]
		pipe := n.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = pipe.HMGet(ctx, n.userKey(id), "seq", "agg", "origin")
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return fmt.Errorf("resync: %w", err)
		}
		for i, c := range cmds {
			vals, err := c.Result()
			if err != nil || len(vals) != 3 {
				continue
			}
			seqS, _ := vals[0].(string)
			aggS, _ := vals[1].(string)
			origin, _ := vals[2].(string)
			seq, _ := strconv.ParseInt(seqS, 10, 64)
			a, err := parseAggregate(aggS)
			if err != nil { // Redis knows nothing of the user (it lost its data)
				a = n.offline(chunk[i], time.Time{})
			}
			n.applyRead(origin, chunk[i], seq, a, force)
		}
	}
	if err := n.resyncSettings(ctx); err != nil {
		return err
	}
	return n.resyncRooms(ctx)
}

// applyRead applies an aggregate read (not received): it replaces the
// replica's unless the replica already holds a later one.
func (n *Node) applyRead(origin string, id, seq int64, a aggregate, force bool) {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if en := n.users[id]; !force && en != nil && en.seq > seq {
		return // a live aggregate came after the read
	}
	n.applyLocked(origin, id, seq, a, true)
}

// liveness refreshes this node's heartbeat, reaps dead nodes, and notices
// Redis coming back.
func (n *Node) liveness() {
	defer n.wg.Done()
	t := time.NewTicker(n.heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		dead, rejoined, clash, err := n.heartbeat(n.ctx)
		if err != nil {
			if n.ctx.Err() == nil {
				n.setDegraded(err)
			}
			continue
		}
		if clash != n.clash.Load() {
			n.clash.Store(clash)
			if clash {
				n.log.Error("cluster: another process started with this --node-id; their edges overwrite each other's: give each node its own", "node", n.id)
			}
		}
		n.sweepReplica()
		if rejoined {
			// Our entry was gone: a survivor took us for dead and
			// removed our edges (it removes the entry last).
			n.log.Warn("cluster: this node was reaped while alive; re-asserting its edges")
			n.degraded.Store(false)
			signal(n.reassert)
		} else if n.degraded.Swap(false) {
			n.log.Info("cluster: Redis is back; re-asserting this node's edges")
			signal(n.reassert)
		}
		if len(dead) > 0 && n.reaping.CompareAndSwap(false, true) {
			// Apart, so that a long reap does not delay this node's own
			// heartbeat.
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer n.reaping.Store(false)
				for _, d := range dead {
					if d.node != n.id {
						n.reap(n.ctx, d.node, d.last)
					}
				}
			}()
		}
	}
}

// forgetAfter is how long the replica keeps a user who went offline (to
// recognise a late, older aggregate of theirs) before it forgets them.
const forgetAfter = time.Minute

// sweepReplica forgets users offline for longer than forgetAfter, so the
// replica holds the users online plus those who left lately, not every
// user ever seen.
func (n *Node) sweepReplica() {
	cutoff := n.clock.Now().Add(-forgetAfter)
	n.rmu.Lock()
	defer n.rmu.Unlock()
	for id, en := range n.users {
		if !en.online && !en.offAt.IsZero() && en.offAt.Before(cutoff) {
			delete(n.users, id)
		}
	}
}

type deadNode struct {
	node string
	last time.Time
}

// heartbeat runs the heartbeat script and returns the dead nodes, whether
// this node's entry had to be added back (it was reaped), and whether
// another process claims this node id.
func (n *Node) heartbeat(ctx context.Context) (dead []deadNode, rejoined, clash bool, err error) {
	res, err := heartbeatScript.Run(ctx, n.rdb, []string{n.key("nodes"), n.key("owner", n.id)}, n.id, n.deadAfter.Milliseconds(), n.token).StringSlice()
	if err == nil && len(res) < 2 {
		err = fmt.Errorf("%d values", len(res))
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("heartbeat: %w", err)
	}
	rejoined, clash = res[0] == "1", res[1] == "1"
	res = res[2:]
	for i := 0; i+1 < len(res); i += 2 {
		ms, _ := strconv.ParseFloat(res[i+1], 64)
		dead = append(dead, deadNode{res[i], time.UnixMilli(int64(ms)).UTC()})
	}
	return dead, rejoined, clash, nil
}

// reap removes a dead node's edges, if no other survivor is doing it.
func (n *Node) reap(ctx context.Context, node string, last time.Time) {
	ok, err := n.rdb.SetNX(ctx, n.key("reap", node), n.id, reapLock).Result()
	if err != nil || !ok {
		return
	}
	n.log.Warn("cluster: node silent; removing its edges", "node", node, "last_heartbeat", last)
	if _, err := n.removeEdges(ctx, node, last, false); err != nil {
		n.log.Warn("cluster: reaping a dead node", "node", node, "err", err)
		return
	}
	if err := n.removeRoomEdges(ctx, node); err != nil {
		n.log.Warn("cluster: reaping a dead node's rooms", "node", node, "err", err)
		return
	}
	n.rdb.ZRem(ctx, n.key("nodes"), node)
}
