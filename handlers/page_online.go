package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/views"
)

// onlinePageSize is how many users one page of /online lists.
const onlinePageSize = 48

// handleOnlinePage lists every online user the viewer may see, paginated
// (?page=N).
func handleOnlinePage(s Store, engine *presence.Engine, friends FriendChecker) echo.HandlerFunc {
	return func(c echo.Context) error {
		page := 1
		if v := c.QueryParam("page"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return httpError(http.StatusBadRequest, "page must be a whole number from 1")
			}
			page = n
		}
		me, _ := currentUser(c)
		all := engine.OnlineAll()
		online := all[:0]
		for _, st := range all {
			if st.UserID == me.ID || viewerCanSee(c.Request().Context(), friends, me.ID, st) {
				online = append(online, st)
			}
		}
		d := views.OnlinePageData{Total: len(online), Page: page, Now: engine.Clock().Now(),
			TotalPages: max(1, (len(online)+onlinePageSize-1)/onlinePageSize)}
		if page > d.TotalPages {
			return httpError(http.StatusNotFound, "there is no page "+strconv.Itoa(page))
		}
		slice := online[min(len(online), (page-1)*onlinePageSize):min(len(online), page*onlinePageSize)]
		ids := make([]int64, len(slice))
		for i, st := range slice {
			ids[i] = st.UserID
		}
		profiles, err := s.UsersByIDs(c.Request().Context(), ids)
		if err != nil {
			return err
		}
		for _, st := range slice {
			d.Users = append(d.Users, views.OnlineEntry{
				WidgetUser: views.WidgetUser{ID: views.PublicID(st.UserID, st.PublicID), Username: st.Username,
					ProfileImageURL: profiles[st.UserID].ProfileImageURL, Host: profiles[st.UserID].IsHost(),
					Mode: string(st.Mode), StatusText: st.StatusText, StatusEmoji: st.StatusEmoji},
				Since: st.Since,
				IsYou: st.UserID == me.ID,
			})
		}
		return render(c, http.StatusOK, views.OnlinePage(pageFor(c, "Online now"), d))
	}
}
