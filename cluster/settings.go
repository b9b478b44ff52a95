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

// Settings across nodes: a user's presence settings (mode, custom status,
// visibility) are persisted in the database by the node where they change,
// and kept in Redis as state with a version (a hash per user: "v" and "s"),
// published on the settings channel by the same Lua call. Nodes apply only
// a version newer than the one they hold, and read every user's settings
// again after their subscription was cut, so a change missed meanwhile
// cannot leave a node showing an invisible user online. Versions come from
// Redis's clock (microseconds, and always above the previous one), so they
// keep rising after Redis lost its data.

// settingsScript stores a user's settings and publishes them with their
// new version.
//
// KEYS: 1 the user's settings hash. ARGV: 1 the settings (JSON), 2 the
// settings channel, 3 this node, 4 the user id.
var settingsScript = redis.NewScript(`
local t = redis.call('TIME')
local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v <= prev then v = prev + 1 end
v = string.format('%.0f', v)
redis.call('HSET', KEYS[1], 'v', v, 's', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. v .. '\n' .. ARGV[1])
return v
`)

// settingsMsg is a user's settings as stored in Redis.
type settingsMsg struct {
	Node       string              `json:"node"`
	User       int64               `json:"user"`
	Mode       presence.Mode       `json:"mode"`
	Text       string              `json:"text,omitempty"`
	Emoji      string              `json:"emoji,omitempty"`
	Expires    time.Time           `json:"expires,omitzero"`
	Visibility presence.Visibility `json:"visibility"`
}

func (m settingsMsg) settings() presence.Settings {
	return presence.Settings{Mode: m.Mode, Text: m.Text, Emoji: m.Emoji, Expires: m.Expires, Visibility: m.Visibility}
}

// RecordSettings implements presence.SettingsRecorder: the settings are
// persisted, and the announcer sends them to the other nodes, whose engines
// apply them. A change made while Redis is away is sent when it is back.
func (n *Node) RecordSettings(userID int64, s presence.Settings) {
	if sr, ok := n.rec.(presence.SettingsRecorder); ok {
		sr.RecordSettings(userID, s)
	}
	b, err := json.Marshal(settingsMsg{Node: n.id, User: userID, Mode: s.Mode, Text: s.Text, Emoji: s.Emoji, Expires: s.Expires, Visibility: s.Visibility})
	if err != nil {
		return
	}
	n.mu.Lock()
	n.dirtySettings[userID] = b
	n.mu.Unlock()
	signal(n.wake)
}

// flushSettings sends the settings changed here. What cannot be sent stays
// pending until Redis is back (the re-assertion sends it).
func (n *Node) flushSettings(ctx context.Context) {
	n.mu.Lock()
	if len(n.dirtySettings) == 0 {
		n.mu.Unlock()
		return
	}
	pending := n.dirtySettings
	n.dirtySettings = make(map[int64][]byte)
	n.mu.Unlock()
	ids := make([]int64, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
	cmds, err := n.runScripts(ctx, func(pipe redis.Pipeliner) []*redis.Cmd {
		cmds := make([]*redis.Cmd, len(ids))
		for i, id := range ids {
			cmds[i] = settingsScript.EvalSha(ctx, pipe, []string{n.settingsKey(id)}, string(pending[id]), n.settings, n.id, id)
		}
		return cmds
	})
	for i, c := range cmds {
		v, cerr := c.Text()
		if cerr != nil {
			n.mu.Lock()
			if _, newer := n.dirtySettings[ids[i]]; !newer {
				n.dirtySettings[ids[i]] = pending[ids[i]]
			}
			n.mu.Unlock()
			continue
		}
		ver, _ := strconv.ParseInt(v, 10, 64)
		n.noteSettingsVersion(ids[i], ver)
	}
	if err != nil && ctx.Err() == nil {
		n.setDegraded(fmt.Errorf("settings: %w", err))
	}
}

func (n *Node) settingsKey(id int64) string { return n.prefix + "s:" + strconv.FormatInt(id, 10) }

// noteSettingsVersion records that this node holds version v of the user's
// settings, and reports whether v is newer than what it held.
func (n *Node) noteSettingsVersion(id, v int64) bool {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if v <= n.settingsVer[id] {
		return false
	}
	n.settingsVer[id] = v
	return true
}

// handleSettings applies another node's change of a user's settings to
// this node's engine, which announces what it changes here:
// "node\nuser\nversion\nsettings".
func (n *Node) handleSettings(payload string) {
	parts := strings.SplitN(payload, "\n", 4)
	if len(parts) != 4 {
		n.log.Warn("cluster: malformed settings change", "payload", payload)
		return
	}
	v, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		n.log.Warn("cluster: malformed settings change", "payload", payload)
		return
	}
	n.applySettings(parts[0], v, parts[3])
}

// applySettings applies settings of the given version unless this node
// holds them or newer ones already (its own change echoed back included).
func (n *Node) applySettings(origin string, v int64, blob string) {
	var m settingsMsg
	if err := json.Unmarshal([]byte(blob), &m); err != nil {
		n.log.Warn("cluster: malformed settings", "err", err)
		return
	}
	if !n.noteSettingsVersion(m.User, v) || origin == n.id {
		return
	}
	n.engine.ApplySettings(m.User, m.settings())
}

// resyncSettings reads every user's settings kept in Redis and applies
// those newer than this node's.
func (n *Node) resyncSettings(ctx context.Context) error {
	var keys []string
	iter := n.rdb.Scan(ctx, 0, n.prefix+"s:*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("resync settings: %w", err)
	}
	for start := 0; start < len(keys); start += 1000 {
		chunk := keys[start:min(start+1000, len(keys))]
		pipe := n.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.HMGet(ctx, k, "v", "s")
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return fmt.Errorf("resync settings: %w", err)
		}
		for _, c := range cmds {
			vals := c.Val()
			if len(vals) != 2 {
				continue
			}
			vs, _ := vals[0].(string)
			blob, _ := vals[1].(string)
			if v, err := strconv.ParseInt(vs, 10, 64); err == nil && blob != "" {
				n.applySettings("", v, blob)
			}
		}
	}
	return nil
}
