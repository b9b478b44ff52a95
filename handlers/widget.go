package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// Widget option limits.
const (
	defaultWidgetMax   = 8
	maxWidgetMax       = 24
	defaultWidgetTitle = "Online Users"
	maxWidgetTitle     = 80
	maxWidgetClass     = 200
)

// widgetViewer is who is looking at a widget: a signed-in user (hidden from
// their own list) or an anonymous visitor of a site using an embed token.
type widgetViewer struct {
	userID int64
	// publicID is the viewer's id as the widget's tiles carry it
	// (idPolicy.public), to hide them from their own list.
	publicID string
	// token is the ?token= that authenticated the viewer, carried on to
	// the widget's list and stream URLs.
	token      string
	embedToken string
}

// requireViewer is middleware for the widget routes: the session cookie,
// a Bearer token, ?token= (a host JWT or an API token, for embed.js and
// the iframe, whose stream URL cannot carry a header), or ?embed_token=
// (read-only, for other sites).
func (a *authenticator) requireViewer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if tok := c.QueryParam("embed_token"); tok != "" && c.Request().Header.Get("Authorization") == "" {
			if _, err := a.lookup(c, store.TokenEmbed, tok); err != nil {
				return authError(err)
			}
			c.Set(viewerKey, widgetViewer{embedToken: tok})
			return next(c)
		}
		u, err := a.resolve(c, true)
		if err != nil {
			return authError(err)
		}
		v := widgetViewer{userID: u.ID, publicID: a.ids.public(u)}
		if c.Request().Header.Get("Authorization") == "" {
			v.token = c.QueryParam("token") // "" unless it authenticated
		}
		c.Set(userKey, u)
		c.Set(viewerKey, v)
		return next(c)
	}
}

const viewerKey = "presence.viewer"

// widgetOptions reads and checks ?max, ?title and ?class.
func widgetOptions(c echo.Context, baseURL string) (views.WidgetOptions, error) {
	o := views.WidgetOptions{Max: defaultWidgetMax, Title: defaultWidgetTitle, BaseURL: baseURL}
	if v := c.QueryParam("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWidgetMax {
			return o, httpError(http.StatusBadRequest, "max must be a whole number from 1 to "+strconv.Itoa(maxWidgetMax))
		}
		o.Max = n
	}
	if v, ok := c.QueryParams()["title"]; ok {
		t := strings.TrimSpace(v[0])
		if !utf8.ValidString(t) || utf8.RuneCountInString(t) > maxWidgetTitle {
			return o, httpError(http.StatusBadRequest, "title must be valid text of at most "+strconv.Itoa(maxWidgetTitle)+" characters")
		}
		if t != "" {
			o.Title = t
		}
	}
	if v := c.QueryParam("class"); v != "" {
		if len(v) > maxWidgetClass || strings.ContainsAny(v, "\"'<>`=\\") {
			return o, httpError(http.StatusBadRequest, "class must be CSS class names (at most 200 characters)")
		}
		o.Class = v
	}
	if v, ok := c.Get(viewerKey).(widgetViewer); ok {
		o.ViewerID = v.publicID
		switch {
		case v.embedToken != "":
			o.Query = "?embed_token=" + url.QueryEscape(v.embedToken)
		case v.token != "":
			o.Query = "?token=" + url.QueryEscape(v.token)
		}
	}
	friends, err := friendsScope(c)
	if err != nil {
		return o, err
	}
	if friends {
		o.Friends, o.Query = true, "?scope=friends"
		if _, ok := c.QueryParams()["title"]; !ok || o.Title == defaultWidgetTitle {
			o.Title = defaultFriendsTitle
		}
	}
	room, err := widgetRoom(c)
	if err != nil {
		return o, err
	}
	if room != "" {
		o.Room = room
		if o.Query == "" {
			o.Query = "?room=" + url.QueryEscape(room)
		} else {
			o.Query += "&room=" + url.QueryEscape(room)
		}
		if _, ok := c.QueryParams()["title"]; !ok || o.Title == defaultWidgetTitle {
			o.Title = defaultRoomTitle
		}
	}
	return o, nil
}

// defaultRoomTitle is the title of a room widget.
const defaultRoomTitle = "Here now"

// widgetRoom reads ?room= for the widget routes: "" for the online list,
// else a room widget (who is in that room now); 400 for a bad name, or
// with scope=friends.
func widgetRoom(c echo.Context) (string, error) {
	room, err := roomParam(c)
	if err != nil || room == "" {
		return "", err
	}
	if c.QueryParam("scope") == "friends" {
		return "", httpError(http.StatusBadRequest, "room and scope=friends cannot be combined")
	}
	return room, nil
}

// defaultFriendsTitle is the title of a friends-scoped widget.
const defaultFriendsTitle = "Friends online"

// friendsScope reads ?scope: "" or "all" for everyone online, "friends"
// for the viewer's friends only, which needs a signed-in viewer.
func friendsScope(c echo.Context) (bool, error) {
	switch c.QueryParam("scope") {
	case "", "all":
		return false, nil
	case "friends":
		if v, _ := c.Get(viewerKey).(widgetViewer); v.userID == 0 {
			return false, httpError(http.StatusBadRequest, "scope=friends needs a signed-in viewer, not an embed token")
		}
		return true, nil
	}
	return false, httpError(http.StatusBadRequest, "scope must be all or friends")
}

// handleWidget serves the embeddable widget fragment.
func handleWidget(base *baseURL) echo.HandlerFunc {
	return func(c echo.Context) error {
		o, err := widgetOptions(c, base.of(c.Request()))
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return render(c, http.StatusOK, views.OnlineUsersWidget(o))
	}
}

// handleWidgetList serves the current shared list fragment: the same bytes
// the stream pushes, so a (re)connecting widget resyncs to the truth. With
// ?scope=friends it renders the viewer's online friends instead (per
// viewer, only when a widget loads or reconnects).
func handleWidgetList(feed *realtime.Feed, s Store, e *presence.Engine) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		friends, err := friendsScope(c)
		if err != nil {
			return err
		}
		room, err := widgetRoom(c)
		if err != nil {
			return err
		}
		v, _ := c.Get(viewerKey).(widgetViewer)
		if room != "" {
			users, err := roomTiles(c, s, publicRoomMembers(e, room, v.userID))
			if err != nil {
				return err
			}
			return render(c, http.StatusOK, views.RoomWidgetList(room, users))
		}
		if !friends {
			return c.HTMLBlob(http.StatusOK, feed.Fragment())
		}
		ids, err := s.FriendIDs(c.Request().Context(), v.userID)
		if err != nil {
			return err
		}
		isFriend := make(map[int64]bool, len(ids))
		for _, id := range ids {
			isFriend[id] = true
		}
		var shown []presence.Status
		var rows []int64
		for _, st := range e.OnlineAll() { // by username
			if isFriend[st.UserID] && st.SeenByFriends() {
				shown = append(shown, st)
				rows = append(rows, st.UserID)
			}
		}
		profiles, err := s.UsersByIDs(c.Request().Context(), rows)
		if err != nil {
			return err
		}
		users := make([]views.WidgetUser, len(shown))
		for i, st := range shown {
			p := profiles[st.UserID]
			users[i] = views.WidgetUser{ID: views.PublicID(st.UserID, st.PublicID), Username: st.Username,
				ProfileImageURL: p.ProfileImageURL, Host: p.IsHost()}
		}
		return render(c, http.StatusOK, views.FriendsWidgetList(users))
	}
}

// handleWidgetStream is the SSE stream of list changes. Over HTTP/1.1 the
// broker takes the connection over and this returns at once. The stream
// ends when the session or token that opened it is revoked.
func handleWidgetStream(b *realtime.Broker, auth *authenticator) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, err := auth.watch(c)
		if err != nil {
			return err
		}
		v, _ := c.Get(viewerKey).(widgetViewer)
		if c.QueryParam("scope") == "rooms" {
			return serveRoomsStream(ctx, c, b, v)
		}
		friends, err := friendsScope(c)
		if err != nil {
			return err
		}
		room, err := widgetRoom(c)
		if err != nil {
			return err
		}
		return streamRefusal(c, b.ServeViewer(ctx, c.Response().Writer, c.Request(), streamOwner(v, c.RealIP()),
			realtime.StreamViewer{UserID: v.userID, Scoped: friends, Room: room}))
	}
}

// streamRefusal answers a stream the broker refused before taking it over.
func streamRefusal(c echo.Context, err error) error {
	if errors.Is(err, realtime.ErrOwnerFull) {
		c.Response().Header().Set("Retry-After", "10")
		return httpError(http.StatusTooManyRequests, "too many open widget streams for this viewer; close some tabs or try again shortly")
	}
	return refusal(c, err)
}

// streamOwner is whom a stream counts against (see docs/SECURITY.md): a
// signed-in user, or for an embed token the client address within that
// token's group, since every anonymous visitor of a host site shares its
// token. The token itself is not kept: a short hash names it.
func streamOwner(v widgetViewer, addr string) string {
	if v.embedToken == "" {
		return "user:" + strconv.FormatInt(v.userID, 10)
	}
	sum := sha256.Sum256([]byte(v.embedToken))
	return "embed:" + hex.EncodeToString(sum[:8]) + "/" + addr
}

// baseURL is the server's public origin: --public-url when set, else taken
// from the request.
type baseURL struct{ fixed string }

func (b *baseURL) of(r *http.Request) string {
	if b.fixed != "" {
		return b.fixed
	}
	scheme := "http"
	if isHTTPS(r) { // TLS, or a trusted proxy's X-Forwarded-Proto
		scheme = "https"
	}
	return scheme + "://" + r.Host // a trusted proxy's X-Forwarded-Host
}
