package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// Outcomes of the friends forms, named in the redirect (?done= or
// ?error=) so the page says what happened without echoing input.
var (
	friendNotices = map[string]string{
		"sent":     "Friend request sent.",
		"accepted": "You are friends now.",
		"declined": "Request removed.",
		"removed":  "Friend removed.",
		"notify":   "Notice setting saved.",
	}
	friendErrors = map[string]string{
		"self":    "You cannot send a friend request to yourself.",
		"already": "You are already friends.",
		"pending": "You already sent that person a request.",
		"nouser":  "There is no user with that name.",
		"gone":    "That request or friend no longer exists.",
		"toomany": "You have too many requests waiting for an answer: withdraw some first.",
	}
)

// handleFriendsPage shows the viewer's friends with their presence (online
// first), the requests pending both ways, the add-by-username form, the
// notices setting and a friends-scoped widget.
func handleFriendsPage(s Store, e *presence.Engine, base *baseURL, ids idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		ctx := c.Request().Context()
		fs, online, err := friendsByPresence(ctx, s, e, me.ID)
		if err != nil {
			return err
		}
		in, out, err := s.FriendRequests(ctx, me.ID)
		if err != nil {
			return err
		}
		notify, err := s.FriendNotify(ctx, me.ID)
		if err != nil {
			return err
		}
		d := views.FriendsPageData{
			Widget: views.WidgetOptions{ViewerID: ids.public(me), Max: maxWidgetMax, Title: defaultFriendsTitle,
				BaseURL: base.of(c.Request()), Query: "?scope=friends", Friends: true},
			Notify: notify,
			Notice: friendNotices[c.QueryParam("done")],
			Error:  friendErrors[c.QueryParam("error")],
			Now:    time.Now(),
		}
		for _, f := range fs {
			_, on := online[f.ID]
			seen := f.LastSeen
			if !on && e.Settings(f.ID).LastSeenHidden() {
				seen = time.Time{}
			}
			d.Friends = append(d.Friends, views.FriendEntry{WidgetUser: widgetUser(ids, f.User), RowID: f.ID, Online: on, LastSeen: seen})
		}
		for _, r := range in {
			d.Incoming = append(d.Incoming, views.RequestEntry{ID: r.ID, Other: widgetUser(ids, r.Other), At: r.CreatedAt})
		}
		for _, r := range out {
			d.Outgoing = append(d.Outgoing, views.RequestEntry{ID: r.ID, Other: widgetUser(ids, r.Other), At: r.CreatedAt})
		}
		return render(c, http.StatusOK, views.FriendsPage(pageFor(c, "Friends"), d))
	}
}

// widgetUser is u's card, with the id clients see.
func widgetUser(ids idPolicy, u store.User) views.WidgetUser {
	return views.WidgetUser{ID: ids.public(u), Username: u.Username, ProfileImageURL: u.ProfileImageURL, Host: u.IsHost()}
}

// backTo redirects after a friends form: to the form's next (a local
// path: a profile), else to /friends saying what happened.
func backTo(c echo.Context, key, code string) error {
	if next := c.FormValue("next"); strings.HasPrefix(next, "/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return c.Redirect(http.StatusSeeOther, next)
	}
	return c.Redirect(http.StatusSeeOther, "/friends?"+key+"="+code)
}

// formError turns a friends-model error into the redirect that names it.
func formError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, store.ErrSelfFriend):
		return backTo(c, "error", "self")
	case errors.Is(err, store.ErrAlreadyFriends):
		return backTo(c, "error", "already")
	case errors.Is(err, store.ErrRequestPending):
		return backTo(c, "error", "pending")
	case errors.Is(err, store.ErrNotFound):
		return backTo(c, "error", "gone")
	case errors.Is(err, store.ErrTooManyRequests):
		return backTo(c, "error", "toomany")
	}
	return err
}

// idParam is the numeric id in a friends form's path.
func idParam(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, httpError(http.StatusBadRequest, "the id in the path must be a whole number")
	}
	return id, nil
}

// handleFriendRequestForm sends a request to the form's username.
func handleFriendRequestForm(s Store, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		ctx := c.Request().Context()
		name := strings.TrimSpace(c.FormValue("username"))
		if name == "" {
			return httpError(http.StatusBadRequest, "a username is required")
		}
		to, err := s.UserByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return backTo(c, "error", "nouser")
		}
		if err != nil {
			return err
		}
		res, err := s.RequestFriend(ctx, me.ID, to.ID)
		if err != nil {
			return formError(c, err)
		}
		if res.Accepted {
			feed.Befriended(me.ID, to.ID)
			return backTo(c, "done", "accepted")
		}
		return backTo(c, "done", "sent")
	}
}

// handleFriendAcceptForm accepts a request addressed to the viewer.
func handleFriendAcceptForm(s Store, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		id, err := idParam(c)
		if err != nil {
			return err
		}
		r, err := s.AcceptFriendRequest(c.Request().Context(), me.ID, id)
		if err != nil {
			return formError(c, err)
		}
		feed.Befriended(r.FromID, r.ToID)
		return backTo(c, "done", "accepted")
	}
}

// handleFriendDeclineForm declines a request to the viewer, or withdraws
// one they sent.
func handleFriendDeclineForm(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		id, err := idParam(c)
		if err != nil {
			return err
		}
		if _, err := s.DeclineFriendRequest(c.Request().Context(), me.ID, id); err != nil {
			return formError(c, err)
		}
		return backTo(c, "done", "declined")
	}
}

// handleFriendRemoveForm ends a friendship (the path has the friend's row
// id: these forms are same-origin pages, not the public API).
func handleFriendRemoveForm(s Store, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		id, err := idParam(c)
		if err != nil {
			return err
		}
		if err := s.RemoveFriend(c.Request().Context(), me.ID, id); err != nil {
			return formError(c, err)
		}
		feed.Unfriended(me.ID, id)
		return backTo(c, "done", "removed")
	}
}

// handleFriendSettingsForm turns "a friend came online" notices on
// (notify=on) or off (notify=off).
func handleFriendSettingsForm(s Store, feed *realtime.FriendsFeed) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		var on bool
		switch c.FormValue("notify") {
		case "on":
			on = true
		case "off":
		default:
			return httpError(http.StatusBadRequest, "notify must be on or off")
		}
		if err := s.SetFriendNotify(c.Request().Context(), me.ID, on); err != nil {
			return err
		}
		feed.SetNotify(me.ID, on)
		return backTo(c, "done", "notify")
	}
}
