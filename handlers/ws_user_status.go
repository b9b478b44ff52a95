package handlers

import (
	"net"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
)

// wsSendBuffer is the kernel send buffer of a WebSocket: hundreds of
// status events, far more than a reading peer ever has in flight.
const wsSendBuffer = 64 << 10

// handleWSUserStatus upgrades /ws/user-status/ to the presence WebSocket.
// The Origin is checked first (403), then the user (401, from ?token=,
// Authorization: Bearer or the session cookie). A refused request gets a
// JSON HTTP error ({"detail"}) and no socket. ?events=0 opts out of status events.
func handleWSUserStatus(hub *wsHub, auth *authenticator, origins *originPolicy) echo.HandlerFunc {
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
		hub.mu.Lock()
		closed := hub.closed
		hub.mu.Unlock()
		if closed {
			return httpError(http.StatusServiceUnavailable, errHubClosed.Error())
		}
		if !hub.conns.acquire() {
			return atCapacity(c)
		}
		conn, err := upgrader.Upgrade(c.Response(), r, nil)
		if err != nil {
			hub.conns.release()
			return nil // the upgrader has answered with an HTTP error
		}
		// A bounded kernel send buffer: a peer that stops reading pins at
		// most this much and is detected (queue full, 1013) after ~1,000
		// status events instead of after 4 MiB of auto-tuned buffer.
		if tc, ok := conn.NetConn().(*net.TCPConn); ok {
			tc.SetWriteBuffer(wsSendBuffer)
		}
		hub.serve(conn, u, r.URL.Query().Get("events") != "0")
		return nil
	}
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
