package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencehq/presence/cluster"
	"github.com/presencehq/presence/presence"
)

// clusterFlags are --redis and --node-id: several nodes sharing presence
// (docs/SCALING.md).
type clusterFlags struct {
	redisURL string
	nodeID   string
	prefix   string
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.redisURL, "redis", "", "Redis (redis://host:6379/0) through which several nodes on one --database-url share who is online; without it this node alone is the truth")
	fs.StringVar(&c.prefix, "redis-prefix", "presence:", "start of every Redis key and channel of this cluster, so that several clusters can share one Redis")
	fs.StringVar(&c.nodeID, "node-id", "", "this node's name among the nodes sharing --redis; keep it across restarts (default: host name and --addr)")
}

func (c *clusterFlags) validate(databaseURL string, demo bool) error {
	switch {
	case c.redisURL == "":
		return nil
	case c.prefix == "":
		return fmt.Errorf("--redis-prefix may not be empty")
	case demo:
		return fmt.Errorf("--demo runs alone: do not give it --redis (PRESENCE_REDIS_URL)")
	case databaseURL == "":
		return fmt.Errorf("--redis needs --database-url: nodes that share presence must share one PostgreSQL database")
	}
	if _, err := redis.ParseURL(c.redisURL); err != nil {
		return fmt.Errorf("--redis: %w", err)
	}
	return nil
}

// connect opens the Redis client and names the node. It reports whether
// the node is alone (no other live node), in which case the database's
// online users are ghosts to reset, as on a single node.
func (c *clusterFlags) connect(ctx context.Context, addr string) (*redis.Client, string, bool, error) {
	opt, err := redis.ParseURL(c.redisURL)
	if err != nil {
		return nil, "", false, fmt.Errorf("--redis: %w", err)
	}
	// Fail fast while Redis is away: the node serves its own connections
	// and tries again every heartbeat.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, 2*time.Second, 2*time.Second
	opt.MaxRetries = 1
	rdb := redis.NewClient(opt)
	id := c.nodeID
	if id == "" {
		host, _ := os.Hostname()
		id = net.JoinHostPort(host, portOf(addr))
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	alone, err := cluster.Alone(sctx, rdb, c.prefix, id, 0)
	if err != nil {
		rdb.Close()
		return nil, "", false, fmt.Errorf("redis at %s: %w", opt.Addr, err)
	}
	return rdb, id, alone, nil
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return addr
}

// newClusterNode creates the node that stands between the engine and the
// batcher; Start joins it once the engine exists.
func (c *clusterFlags) newNode(rdb *redis.Client, id string, rec presence.Recorder, sessions presence.SessionRecorder, log *slog.Logger) (*cluster.Node, error) {
	return cluster.New(cluster.Config{Redis: rdb, NodeID: id, Prefix: c.prefix, Recorder: rec, Sessions: sessions, Log: log.With("node", id)})
}
