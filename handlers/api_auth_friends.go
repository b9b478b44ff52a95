package handlers

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
)

// Page sizes of GET /api/auth/friends/, as Django REST framework's
// PageNumberPagination with page_size_query_param and max_page_size.
const (
	defaultFriendsPageSize = 20
	maxFriendsPageSize     = 100
)

// authFriendJSON is one result of GET /api/auth/friends/: the friendship,
// whose "friend" the original app's OnlineUsers reads.
type authFriendJSON struct {
	Friend    onlineUserJSON `json:"friend"`
	CreatedAt *string        `json:"created_at"`
}

// handleAPIAuthFriends serves GET /api/auth/friends/?page_size=N&page=P in
// the shape the original app's OnlineUsers reads, paginated as DRF does:
// {"count", "next", "previous", "results": [{"friend": {...}}]}, online
// friends first. page_size defaults to 20 and is capped at 100 (a bad one
// falls back to the default, as in DRF); a page that is not a whole number
// from 1 or lies past the last page is 404 {"detail": "Invalid page."}.
// next and previous are absolute URLs, or null.
func handleAPIAuthFriends(s Store, e *presence.Engine, idp idPolicy, base *baseURL) echo.HandlerFunc {
	return func(c echo.Context) error {
		me, _ := currentUser(c)
		size := defaultFriendsPageSize
		if n, err := strconv.Atoi(c.QueryParam("page_size")); err == nil && n > 0 {
			size = min(n, maxFriendsPageSize)
		}
		page := 1
		if v := c.QueryParam("page"); v != "" && v != "last" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return httpError(http.StatusNotFound, "Invalid page.")
			}
			page = n
		}
		fs, online, err := friendsByPresence(c.Request().Context(), s, e, me.ID)
		if err != nil {
			return err
		}
		pages := max(1, (len(fs)+size-1)/size)
		if c.QueryParam("page") == "last" {
			page = pages
		}
		if page > pages {
			return httpError(http.StatusNotFound, "Invalid page.")
		}
		results := make([]authFriendJSON, 0, size)
		for _, f := range fs[min(len(fs), (page-1)*size):min(len(fs), page*size)] {
			results = append(results, authFriendJSON{Friend: presenceJSON(f.User, online, idp, e), CreatedAt: jsonTime(f.Since)})
		}
		var next, prev *string
		self := base.of(c.Request()) + c.Request().URL.Path
		if page < pages {
			u := pageURL(self, c.QueryParams(), page+1)
			next = &u
		}
		if page > 1 {
			u := pageURL(self, c.QueryParams(), page-1)
			prev = &u
		}
		return c.JSON(http.StatusOK, map[string]any{"count": len(fs), "next": next, "previous": prev, "results": results})
	}
}

// pageURL is the request's URL at another page; page 1 drops the
// parameter, as DRF's previous link does.
func pageURL(self string, q url.Values, page int) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	if page == 1 {
		v.Del("page")
	} else {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return self
	}
	return self + "?" + v.Encode()
}
