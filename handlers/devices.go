package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// tabHeader carries the asking tab's id (presence.js sets it on htmx
// requests), so "this tab" can be marked in the devices list.
const tabHeader = "X-Presence-Tab"

// connMeta is what the registry keeps of the credential and tab behind a
// WebSocket handshake (see realtime.ConnMeta).
func connMeta(c echo.Context) realtime.ConnMeta {
	m := realtime.ConnMeta{Tab: c.QueryParam("tab")}
	if t, ok := c.Get(tokenKey).(authToken); ok {
		m.TokenID, m.Session = t.id, t.kind == store.TokenSession
	}
	return m
}

// requestTab is the tab the request says it comes from, if any.
func requestTab(c echo.Context) string {
	if t := c.Request().Header.Get(tabHeader); t != "" {
		return realtime.CleanTab(t)
	}
	return realtime.CleanTab(c.QueryParam("tab"))
}

// deviceJSON is one item of GET /api/users/me/devices/.
type deviceJSON struct {
	ID           string `json:"id"`
	Browser      string `json:"browser"`
	OS           string `json:"os"`
	Kind         string `json:"kind"`
	Label        string `json:"label"`
	Since        string `json:"since"`
	LastActivity string `json:"last_activity"`
	// Current says the socket was opened with the credential of this
	// request (this browser's session, or this API token); ThisTab that it
	// is the asking tab's own.
	Current bool `json:"current"`
	ThisTab bool `json:"this_tab"`
}

// deviceMarks tells whether a connection is the asking request's tab, or
// was opened by its credential.
func deviceMarks(c echo.Context, ci realtime.ConnInfo) (thisTab, current bool) {
	t, _ := c.Get(tokenKey).(authToken)
	current = t.id != 0 && ci.TokenID == t.id
	tab := requestTab(c)
	thisTab = current && tab != "" && ci.Tab == tab
	return thisTab, current
}

// handleAPIDevices lists the requester's live connections.
func handleAPIDevices(hub *realtime.Hub) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, _ := currentUser(c)
		out := []deviceJSON{}
		for _, ci := range hub.ConnectionsOf(u.ID) {
			thisTab, current := deviceMarks(c, ci)
			out = append(out, deviceJSON{
				ID: ci.ID, Browser: ci.Device.Browser, OS: ci.Device.OS, Kind: ci.Device.Kind, Label: ci.Device.Label(),
				Since: ci.Since.UTC().Format(timeFormat), LastActivity: ci.LastActivity.UTC().Format(timeFormat),
				Current: current, ThisTab: thisTab,
			})
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, out)
	}
}

// deviceSignOut closes one of a user's connections with 1008 and ends the
// credential that opened it: a browser session (every tab of that browser
// is signed out) or an API token. A host JWT cannot be revoked: its
// socket is closed only.
type deviceSignOut struct {
	hub   *realtime.Hub
	store Store
	revs  *realtime.Revocations
	log   *slog.Logger
}

// errNoDevice is the answer for an id that is not one of the user's live
// connections (gone already, or never theirs).
var errNoDevice = httpError(http.StatusNotFound, "no such device: it is not connected (any more)")

// signOut signs out connection id of userID (0: any user's, for an
// administrator) and returns what it was.
func (d *deviceSignOut) signOut(ctx context.Context, userID int64, id, reason string) (realtime.ConnInfo, error) {
	ci, ok := d.hub.CloseConnection(id, userID, reason)
	if !ok {
		return ci, errNoDevice
	}
	if ci.TokenID != 0 {
		if err := d.store.RevokeTokenID(ctx, ci.UserID, ci.TokenID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return ci, err
		}
		d.revs.Revoke(ci.TokenID) // its other sockets and streams, here, at once
	}
	return ci, nil
}

// handleAPIDeleteDevice signs one of the requester's connections out.
func handleAPIDeleteDevice(d *deviceSignOut) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, _ := currentUser(c)
		ci, err := d.signOut(c.Request().Context(), u.ID, c.Param("id"), "signed out from the devices list")
		if err != nil {
			return err
		}
		d.log.Info("device signed out", "user", u.Username, "device", ci.Device.Label(), "session", ci.Session)
		return c.NoContent(http.StatusNoContent)
	}
}

// deviceRows is the devices list of the requester, for the page.
func deviceRows(c echo.Context, hub *realtime.Hub, userID int64) []views.DeviceRow {
	var rows []views.DeviceRow
	for _, ci := range hub.ConnectionsOf(userID) {
		thisTab, current := deviceMarks(c, ci)
		rows = append(rows, views.DeviceRow{
			ID: ci.ID, Label: ci.Device.Label(), Kind: ci.Device.Kind, Since: ci.Since, Active: ci.LastActivity,
			Tab: ci.Tab, ThisTab: thisTab, ThisBrowser: current && ci.Session,
		})
	}
	return rows
}

// handleDevicesPage is "Your devices".
func handleDevicesPage(hub *realtime.Hub, clock presence.Clock) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, _ := currentUser(c)
		c.Response().Header().Set("Cache-Control", "no-store")
		return render(c, http.StatusOK, views.DevicesPage(pageFor(c, "Your devices"), deviceRows(c, hub, u.ID), clock.Now()))
	}
}

// handleDevicesList is the list of "Your devices" alone, for htmx.
func handleDevicesList(hub *realtime.Hub, clock presence.Clock) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, _ := currentUser(c)
		c.Response().Header().Set("Cache-Control", "no-store")
		return render(c, http.StatusOK, views.DevicesList(deviceRows(c, hub, u.ID), clock.Now()))
	}
}

// handleDeviceSignOutForm is the page's sign-out button: a form post,
// answered with a redirect back to the list (or to the login page when the
// user signed out this very browser).
func handleDeviceSignOutForm(d *deviceSignOut) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, _ := currentUser(c)
		ci, err := d.signOut(c.Request().Context(), u.ID, c.Param("id"), "signed out from the devices list")
		if err != nil {
			return err
		}
		d.log.Info("device signed out", "user", u.Username, "device", ci.Device.Label(), "session", ci.Session)
		if t, ok := c.Get(tokenKey).(authToken); ok && t.id == ci.TokenID {
			return c.Redirect(http.StatusSeeOther, "/login")
		}
		return c.Redirect(http.StatusSeeOther, "/devices")
	}
}
