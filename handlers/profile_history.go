package handlers

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// profileHistoryDays is how many days the profile's timeline shows (fewer
// when the server keeps fewer).
const profileHistoryDays = 7

// addHistory fills in the user's last days online for the profile's
// timeline, when history is on and the viewer may see it (the user and
// their friends: mayShowHistory). The days are cut in the viewer's time
// zone as their browser reported it (UTC when unknown).
func addHistory(c echo.Context, deps profileDeps, id int64, d *views.ProfileData) error {
	if deps.history <= 0 {
		return nil
	}
	ctx := c.Request().Context()
	me, _ := currentUser(c)
	if !mayShowHistory(ctx, deps.friends, me.ID, id, deps.engine.Settings(id)) {
		return nil
	}
	days := min(profileHistoryDays, int(deps.history))
	loc := viewerZone(c, deps, me.ID)
	now := deps.clock.Now()
	y, m, day := now.In(loc).Date()
	since := time.Date(y, m, day-days+1, 0, 0, 0, 0, loc)
	sessions, err := deps.store.History(ctx, id, since)
	if err != nil {
		return err
	}
	spans := make([]views.HistorySpan, len(sessions))
	for i, s := range sessions {
		spans[i] = views.HistorySpan{Start: s.Start, End: s.End, Device: s.Device}
	}
	h := views.NewHistoryTimeline(spans, now, loc, days)
	d.History = &h
	return nil
}

// viewerZone is the time zone the viewer's browser last reported, or UTC.
func viewerZone(c echo.Context, deps profileDeps, viewer int64) *time.Location {
	zone, ok := deps.zones.Zone(viewer)
	if !ok {
		if lt, err := deps.store.LocalTimeOf(c.Request().Context(), viewer); err == nil {
			zone = lt.Zone
		}
	}
	if zone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return time.UTC
	}
	return loc
}
