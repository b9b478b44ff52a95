package handlers

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/webhook"
)

// metricsOnMain guards /metrics on the main listener. With a metrics
// listener of its own (separate), the main one answers 404. Otherwise only
// a request from a loopback address that carries no forwarding header is
// answered (a scraper on the same host): how many people are online is not
// for the public, and behind a proxy on the same host every request comes
// from loopback but carries the proxy's X-Forwarded-For. Others get 404,
// as if there were no such page.
func metricsOnMain(h echo.HandlerFunc, separate bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if separate || !localUnproxied(c.Request()) {
			return echo.ErrNotFound
		}
		return h(c)
	}
}

// localUnproxied reports whether r comes straight from a loopback address,
// not relayed by a proxy (no X-Forwarded-For, X-Real-IP or Forwarded).
func localUnproxied(r *http.Request) bool {
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if len(r.Header[h]) > 0 {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// handleMetrics serves counters in the Prometheus text format.
func handleMetrics(s Store, engine *presence.Engine, b *presence.Batcher, hub *realtime.Hub, feed *realtime.Feed, broker *realtime.Broker, capacity *realtime.ConnCap, hooks WebhookStats, friends *realtime.FriendsFeed, rooms *realtime.RoomFeed, cl ClusterNode) echo.HandlerFunc {
	return func(c echo.Context) error {
		users, conns := engine.Counts()
		st := s.Stats()
		hs, bs := hub.Stats(), broker.Stats()
		var sb strings.Builder
		metric := func(name, typ, help string, v int64) {
			fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, typ, name, v)
		}
		metric("presence_users_online", "gauge", "Users online (including those in their grace period).", int64(users))
		metric("presence_connections", "gauge", "Live presence connections.", int64(conns))
		metric("presence_websockets_open", "gauge", "Open WebSocket connections.", int64(hs.Open))
		metric("presence_websockets_accepted_total", "counter", "WebSocket connections accepted.", hs.Accepted)
		metric("presence_websockets_kicked_total", "counter", "WebSocket connections dropped by the heartbeat deadline.", hs.Kicked)
		metric("presence_websockets_slow_cut_total", "counter", "WebSocket connections closed because a write to them waited the write deadline: the peer stopped reading.", hs.Slow)
		metric("presence_websockets_gap_closed_total", "counter", "WebSockets closed with 1013 because the fan-out fell behind the bus and events were lost.", hs.GapClosed)
		metric("presence_ws_messages_rate_limited_total", "counter", "WebSocket messages refused by the per-socket rate limit.", hs.Limited)
		metric("presence_ws_messages_received_total", "counter", "WebSocket messages received.", hs.Received)
		metric("presence_websockets_closed_by_request_total", "counter", "WebSockets closed (1008) because their user signed the device out or an administrator kicked them.", hs.ClosedByRequest)
		metric("presence_long_lived_connections", "gauge", "WebSockets plus event streams held, against --max-conns.", capacity.Held())
		metric("presence_connections_refused_at_capacity_total", "counter", "WebSockets and streams refused with 503 at --max-conns.", capacity.Refused())
		metric("presence_connections_refused_no_fds_total", "counter", "Connections refused with 503 because the process was out of file descriptors.", capacity.NoFDs.Load())
		metric("presence_sse_subscribers", "gauge", "Open widget event streams.", int64(bs.Subscribers))
		metric("presence_sse_events_published_total", "counter", "Widget fragments published to the event streams.", bs.Published)
		metric("presence_sse_slow_clients_cut_total", "counter", "Event streams cut off because a write timed out.", bs.CutOff)
		metric("presence_sse_resyncs_total", "counter", "Times a lagging event stream was sent the whole list instead of the changes it missed.", bs.Resyncs)
		fs := feed.Stats()
		metric("presence_widget_renders_total", "counter", "Shared widget fragment renders.", fs.Renders)
		metric("presence_widget_list_deltas_total", "counter", "Changes to the users shown pushed as a delta (tiles in and out).", fs.Deltas)
		metric("presence_widget_list_pushes_total", "counter", "Changes to the users shown pushed as the whole list (a delta would have cost more).", fs.Fulls)
		ff := friends.Stats()
		metric("presence_friends_fragments_rendered_total", "counter", "Friends-widget fragments rendered (one per change a friend's widget watches, and per notice).", ff.Renders)
		metric("presence_friends_deliveries_total", "counter", "Friends-widget fragments queued on event streams (each to one friend's stream).", ff.Routed)
		nRooms, members := engine.RoomCounts()
		metric("presence_rooms", "gauge", "Rooms with someone in them (who is here now).", int64(nRooms))
		metric("presence_room_members", "gauge", "Room memberships (a user in a room, however many tabs).", int64(members))
		rs := rooms.Stats()
		metric("presence_room_fragments_rendered_total", "counter", "Room-widget fragments rendered (one per change in a watched room).", rs.Renders)
		metric("presence_room_deliveries_total", "counter", "Room-widget fragments queued on event streams.", rs.Routed)
		metric("presence_sse_targeted_bytes_total", "counter", "Bytes queued on event streams by per-viewer events (friends widgets, notices).", bs.TargetedBytes)
		metric("presence_db_write_transactions_total", "counter", "Committed database write transactions.", st.WriteTxs)
		metric("presence_db_presence_rows_written_total", "counter", "User rows written by presence batches.", st.WriteRows)
		if b != nil {
			metric("presence_persist_pending_users", "gauge", "Users with presence changes not yet written.", int64(b.Pending()))
			failing := int64(0)
			if b.LastError() != nil {
				failing = 1
			}
			metric("presence_persist_failing", "gauge", "1 while presence writes are failing.", failing)
		}
		var ws webhook.Stats
		if hooks != nil {
			ws = hooks.Stats()
		}
		metric("presence_webhook_deliveries_succeeded_total", "counter", "Webhook deliveries answered with a 2xx.", ws.Succeeded)
		metric("presence_webhook_attempts_failed_total", "counter", "Webhook attempts that failed (no 2xx, no answer, timeout); retried unless given up.", ws.FailedAttempts)
		metric("presence_webhook_deliveries_given_up_total", "counter", "Webhook deliveries given up a day after their event.", ws.GivenUp)
		metric("presence_webhook_deliveries_pending", "gauge", "Webhook deliveries not yet delivered or given up.", ws.Pending)
		metric("presence_webhook_event_gaps_total", "counter", "Times the webhook dispatcher fell behind the presence events and missed some.", ws.Gaps)
		metric("presence_webhook_deliveries_dropped_total", "counter", "Webhook deliveries dropped because the database could not store them in time.", ws.Dropped)
		if cl != nil {
			cs := cl.Stats()
			degraded := int64(0)
			if cs.Degraded {
				degraded = 1
			}
			metric("presence_cluster_degraded", "gauge", "1 while this node cannot reach Redis and serves its own connections only.", degraded)
			metric("presence_cluster_edge_changes_total", "counter", "Edge changes this node sent to Redis (one Lua call each; pings send none).", cs.Announces)
			metric("presence_cluster_redis_round_trips_total", "counter", "Round trips to Redis that carried edge changes.", cs.RoundTrips)
			metric("presence_cluster_changes_published_total", "counter", "Presence changes this node's edge changes published to every node.", cs.Published)
			metric("presence_cluster_changes_received_total", "counter", "Presence changes received from Redis (from every node, this one included).", cs.Received)
			metric("presence_cluster_sequence_gaps_total", "counter", "Received changes that skipped a user's sequence number (a missed change, healed by the newer one).", cs.Gaps)
			metric("presence_cluster_resyncs_total", "counter", "Full reads of who is online (start, Redis back).", cs.Resyncs)
			metric("presence_cluster_reaped_edges_total", "counter", "Edges of dead nodes this node removed.", cs.Reaped)
			metric("presence_cluster_reasserts_total", "counter", "Times this node re-sent all its edges (Redis came back).", cs.Reasserts)
		}
		metric("go_goroutines", "gauge", "Number of goroutines.", int64(runtime.NumGoroutine()))
		if rss, ok := residentBytes(); ok {
			metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
		}
		return c.Blob(200, "text/plain; version=0.0.4; charset=utf-8", []byte(sb.String()))
	}
}

// residentBytes reads the process RSS from /proc (Linux only).
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
