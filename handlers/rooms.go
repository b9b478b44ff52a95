package handlers

import (
	"context"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// roomParam reads ?room= (docs/PROTOCOL.md, "Rooms"): "" when absent, the
// name when usable, else a 400 saying what is wrong with it.
func roomParam(c echo.Context) (string, error) {
	room, ok := c.QueryParams()["room"]
	if !ok {
		return "", nil
	}
	if p := presence.RoomProblem(room[0]); p != "" {
		return "", httpError(http.StatusBadRequest, p)
	}
	return room[0], nil
}

// publicRoomMembers returns the members of room that everyone may see (not
// hidden: see presence.Status.Hidden), except the user except, by
// username: what a room widget shows, the same for every viewer of the
// room, as the room-delta events keep it (realtime.RoomFeed).
func publicRoomMembers(e *presence.Engine, room string, except int64) []presence.Status {
	all := e.RoomMembers(room)
	out := all[:0]
	for _, st := range all {
		if st.UserID != except && !st.Hidden() {
			out = append(out, st)
		}
	}
	return out
}

// roomTiles are the widget cards of members, with their avatars.
func roomTiles(c echo.Context, s Store, members []presence.Status) ([]views.WidgetUser, error) {
	ids := make([]int64, len(members))
	for i, st := range members {
		ids[i] = st.UserID
	}
	profiles, err := s.UsersByIDs(c.Request().Context(), ids)
	if err != nil {
		return nil, err
	}
	users := make([]views.WidgetUser, len(members))
	for i, st := range members {
		p := profiles[st.UserID]
		users[i] = views.WidgetUser{ID: views.PublicID(st.UserID, st.PublicID), Username: st.Username,
			ProfileImageURL: p.ProfileImageURL, Host: p.IsHost(),
			Mode: string(st.Mode), StatusText: st.StatusText, StatusEmoji: st.StatusEmoji}
	}
	return users, nil
}

// maxProfileViewers is how many "viewing this profile now" avatars show.
const maxProfileViewers = 12

// profileViewers is the "viewing this profile now" widget of a profile
// page: the members of the page's room (its path, as presence.js names it:
// location.pathname), the viewer and hidden users left out, rendered now
// and kept live by the viewer's rooms stream (serveRoomsStream).
func profileViewers(c echo.Context, deps profileDeps, me store.User) (views.WidgetOptions, error) {
	room := c.Request().URL.EscapedPath()
	if presence.RoomProblem(room) != "" {
		return views.WidgetOptions{}, nil // no live viewers for a path no tab can name
	}
	users, err := roomTiles(c, deps.store, publicRoomMembers(deps.engine, room, me.ID))
	if err != nil {
		return views.WidgetOptions{}, err
	}
	o := views.WidgetOptions{Room: room, Compact: true, Users: users, Max: maxProfileViewers,
		Title: "Viewing this profile now", Query: "?room=" + url.QueryEscape(room), StreamQuery: "?scope=rooms"}
	if me.ID != 0 {
		o.ViewerID = deps.ids.public(me)
	}
	return o, nil
}

// serveRoomsStream serves /widgets/online-users/stream?scope=rooms: the
// signed-in viewer's rooms stream, which carries the room-delta events of
// every room the viewer's tabs are in. Every room widget of a browser
// (a profile's viewers, in any number of tabs on different profiles) shares
// this one stream, so over HTTP/1.1 they hold one of the browser's six
// connections, not one each.
func serveRoomsStream(ctx context.Context, c echo.Context, b *realtime.Broker, v widgetViewer) error {
	if v.userID == 0 {
		return httpError(http.StatusBadRequest, "scope=rooms needs a signed-in viewer, not an embed token")
	}
	return streamRefusal(c, b.ServeViewer(ctx, c.Response().Writer, c.Request(), streamOwner(v, c.RealIP()),
		realtime.StreamViewer{UserID: v.userID, MyRooms: true}))
}
