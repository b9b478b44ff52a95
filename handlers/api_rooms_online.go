package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
)

// handleAPIRoomsOnline is GET /api/rooms/online/?room=NAME: who is in the
// room now, in the shape of GET /api/users/online/ (onlineUserJSON), by
// username, the requester left out. A member the requester may not see
// (invisible, or showing their presence to friends only or to nobody) is
// left out as in the online list. 400 without a usable room name.
func handleAPIRoomsOnline(s Store, engine *presence.Engine, idp idPolicy, base *baseURL, friends FriendChecker) echo.HandlerFunc {
	return func(c echo.Context) error {
		room, err := roomParam(c)
		if err != nil {
			return err
		}
		if room == "" {
			return httpError(http.StatusBadRequest, "room is required: ?room=NAME")
		}
		out, err := onlineList(c, s, idp, base, friends, engine.RoomMembers(room))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}
