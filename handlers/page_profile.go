package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// profileDeps is what a profile page needs.
type profileDeps struct {
	store   Store
	engine  *presence.Engine
	ids     idPolicy
	zones   *zoneRecorder
	clock   presence.Clock
	friends FriendChecker
	history historyDays
}

// handleProfilePage shows a local account by username with their
// presence. Host users are not found here (their names are the host's and
// may repeat a local one): their page is /host/users/{id}
// (handleHostProfilePage).
func handleProfilePage(d profileDeps) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := d.store.UserByName(c.Request().Context(), c.Param("username"))
		if err == nil && u.IsHost() {
			err = store.ErrNotFound
		}
		return profile(c, d, u, err)
	}
}

// handleHostProfilePage shows a host user by the host's id for them: the
// id space of the host site, never mistaken for a local account's.
func handleHostProfilePage(d profileDeps) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathParam(c, "id")
		if err != nil {
			return err
		}
		u, err := d.store.HostUser(c.Request().Context(), id)
		return profile(c, d, u, err)
	}
}

// profile renders u's profile page, or the error of looking them up: online
// now (with their mode and status), or when they were last seen, as far as
// their visibility lets the viewer see (an invisible user is offline to
// all but themselves); their local time, unless they hide it; their last
// days online, to themselves and their friends (profile_history.go); and
// the viewer's friend button.
func profile(c echo.Context, deps profileDeps, u store.User, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return httpError(http.StatusNotFound, "no such user")
	}
	if err != nil {
		return err
	}
	me, _ := currentUser(c)
	ctx := c.Request().Context()
	st, online := deps.engine.State(u.ID)
	online = online && viewerCanSee(ctx, deps.friends, me.ID, st)
	d := views.ProfileData{
		WidgetUser:   views.WidgetUser{ID: deps.ids.public(u), Username: u.Username, ProfileImageURL: u.ProfileImageURL, Host: u.IsHost()},
		Online:       online,
		HideLastSeen: !mayShowLastSeen(ctx, deps.friends, me.ID, u.ID, deps.engine.Settings(u.ID)),
		LastSeen:     u.LastSeen,
		Joined:       u.CreatedAt,
		IsAdmin:      u.IsAdmin,
		Now:          deps.clock.Now(),
	}
	if online {
		d.Mode, d.StatusText, d.StatusEmoji = string(st.Mode), st.StatusText, st.StatusEmoji
	}
	if err := addLocalTime(c, deps.store, deps.zones, deps.clock, u.ID, &d); err != nil {
		return err
	}
	if err := addHistory(c, deps, u.ID, &d); err != nil {
		return err
	}
	if d.Viewers, err = profileViewers(c, deps, me); err != nil {
		return err
	}
	if me.ID != 0 && me.ID != u.ID {
		fs, err := deps.store.FriendStateOf(ctx, me.ID, u.ID)
		if err != nil {
			return err
		}
		d.Friend = views.FriendButton{Show: true, UserID: u.ID, Username: u.Username,
			Friends: fs.Friends, Outgoing: fs.Outgoing, Incoming: fs.Incoming}
	}
	return render(c, http.StatusOK, views.ProfilePage(pageFor(c, u.Username), d))
}

// addLocalTime fills in the user's local time ("14:32", rendered for
// their zone) when their browser has reported one and they show it; the
// owner always sees their own, marked when hidden from others.
func addLocalTime(c echo.Context, s Store, zones *zoneRecorder, clock presence.Clock, id int64, d *views.ProfileData) error {
	lt, err := s.LocalTimeOf(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if tz, ok := zones.Zone(id); ok {
		lt.Zone = tz // reported in this run, maybe not written yet
	}
	me, _ := currentUser(c)
	own := me.ID == id
	if lt.Zone == "" || (!lt.Show && !own) {
		return nil
	}
	loc, err := time.LoadLocation(lt.Zone)
	if err != nil {
		return nil // a zone this build no longer knows: show nothing
	}
	d.LocalTime, d.TimeZone, d.LocalTimeHidden = clock.Now().In(loc).Format("15:04"), lt.Zone, !lt.Show
	return nil
}

// pathParam is the path parameter name, unescaped once. Echo matches
// routes on the escaped path when the request has one (an id with '/' or
// '?' comes as %2F, %3F), else on the decoded path, where a literal '%'
// must stay as it is.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", httpError(http.StatusBadRequest, "the path is not validly escaped")
		}
		v = u
	}
	if store.ValidateExternalID(v) != nil {
		return "", httpError(http.StatusNotFound, "no such user")
	}
	return v, nil
}
