package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/views"
)

// handleStatusForm answers POST /status, the header's status menu: mode,
// emoji and text with an expiry (never, 30m, 1h, today in the browser's
// time zone), visibility; clear=1 clears the status. It redirects (303)
// back to the page the menu was on.
func handleStatusForm(engine *presence.Engine, friends settingsListener) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		now := engine.Clock().Now()
		var ch statusChange
		bad := func(err error) error { return httpError(http.StatusBadRequest, err.Error()) }
		if v := c.FormValue("mode"); v != "" {
			m, err := parseMode(v)
			if err != nil {
				return bad(err)
			}
			ch.mode = &m
		}
		if v := c.FormValue("visibility"); v != "" {
			vis, err := parseVisibility(v)
			if err != nil {
				return bad(err)
			}
			ch.visibility = &vis
		}
		text, err := cleanStatusText(c.FormValue("text"))
		if err != nil {
			return bad(err)
		}
		emoji, err := cleanEmoji(c.FormValue("emoji"))
		if err != nil {
			return bad(err)
		}
		if c.FormValue("clear") != "" {
			text, emoji = "", ""
		}
		ch.text, ch.emoji = &text, &emoji
		ch.expiresSet = true
		switch v := c.FormValue("expires"); v {
		case "", "never":
		case "30m":
			ch.expires = now.Add(30 * time.Minute)
		case "1h":
			ch.expires = now.Add(time.Hour)
		case "today":
			ch.expires = endOfDay(now, c.FormValue("tz_offset"))
		default:
			return httpError(http.StatusBadRequest, "expires must be never, 30m, 1h or today")
		}
		engine.SetSettings(me.ID, ch.apply(engine.Settings(me.ID)))
		friends.SettingsChanged(me.ID)
		return c.Redirect(http.StatusSeeOther, localPath(c.FormValue("return")))
	}
}

// endOfDay is the next midnight in the browser's time zone, given as
// JavaScript's getTimezoneOffset (minutes behind UTC); UTC when missing or
// out of range.
func endOfDay(now time.Time, tzOffset string) time.Time {
	off, err := strconv.Atoi(tzOffset)
	if err != nil || off < -14*60 || off > 14*60 {
		off = 0
	}
	zone := time.FixedZone("browser", -off*60)
	local := now.In(zone)
	return time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, zone).UTC()
}

// localPath is p when it is a path on this server, else "/": a form's
// return address must not send the browser elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/"
	}
	return p
}

// statusMenu is the header menu's data for the signed-in user.
func statusMenu(engine *presence.Engine, userID int64) *views.StatusMenu {
	s := engine.Settings(userID)
	m := &views.StatusMenu{Mode: string(s.Mode), StatusText: s.Text, StatusEmoji: s.Emoji, Visibility: string(s.Visibility)}
	if !s.Expires.IsZero() {
		m.Expires = "in " + views.Ago(s.Expires, engine.Clock().Now(), "")
	}
	return m
}
