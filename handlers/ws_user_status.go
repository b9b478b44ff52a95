package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/realtime"
)

// handleWSUserStatus upgrades /ws/user-status/ to the presence WebSocket.
// The Origin is checked first (403), then the user (401, from ?token=,
// Authorization: Bearer or the session cookie). A refused request gets a
// JSON HTTP error ({"detail"}) and no socket. ?events=0 opts out of status events.
// ?tz= is the browser's IANA time zone, kept for the profile's local time;
// a zone that is not one is ignored (clients of the original protocol send
// none). ?room= is the room the tab is in (docs/PROTOCOL.md, "Rooms"); a
// bad name is refused with 400 before the upgrade.
func handleWSUserStatus(hub *realtime.Hub, auth *authenticator, origins *originPolicy, zones *zoneRecorder) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !origins.allowWebSocket(r) {
			return httpError(http.StatusForbidden, "origin not allowed")
		}
		u, err := auth.resolve(c, true)
		if err != nil {
			return authError(err)
		}
		if err := checkHandshake(r); err != nil {
			return err
		}
		room, err := roomParam(c)
		if err != nil {
			return err
		}
		ctx, err := auth.watch(c) // signing out or revoking the token closes the socket (1008)
		if err != nil {
			return err
		}
		// Before the ack goes out: a client that has it can rely on the
		// zone being known.
		if tz := validZone(r.URL.Query().Get("tz")); tz != "" {
			zones.Record(u.ID, tz)
		}
		meta := connMeta(c)
		meta.Room = room
		err = hub.AcceptConn(ctx, c.Response(), r, auth.ids.presenceUser(u), r.URL.Query().Get("events") != "0", meta)
		return refusal(c, err)
	}
}

// refusal answers a real-time connection the hub or broker refused before
// taking it over: 503 with Retry-After, so clients back off.
func refusal(c echo.Context, err error) error {
	switch {
	case errors.Is(err, realtime.ErrFull):
		return atCapacity(c)
	case errors.Is(err, realtime.ErrClosed):
		c.Response().Header().Set("Retry-After", "5")
		return httpError(http.StatusServiceUnavailable, err.Error())
	}
	return err
}

// atCapacity is the refusal at --max-conns: 503 with a Retry-After.
func atCapacity(c echo.Context) error {
	c.Response().Header().Set("Retry-After", "5")
	return httpError(http.StatusServiceUnavailable, "server is at capacity; try again shortly")
}

// checkHandshake refuses (400) a request that is not a WebSocket handshake
// the upgrader would accept, so the refusal goes through the error handler
// as JSON instead of the upgrader's plain-text answer.
func checkHandshake(r *http.Request) error {
	switch {
	case !websocket.IsWebSocketUpgrade(r):
		return httpError(http.StatusBadRequest, "not a WebSocket handshake: want Connection: Upgrade and Upgrade: websocket")
	case !strings.Contains(r.Header.Get("Sec-WebSocket-Version"), "13"):
		return httpError(http.StatusBadRequest, "unsupported WebSocket version: want Sec-WebSocket-Version: 13")
	case r.Header.Get("Sec-WebSocket-Key") == "":
		return httpError(http.StatusBadRequest, "WebSocket handshake lacks Sec-WebSocket-Key")
	}
	return nil
}
