package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// handleHomePage renders the landing page, with the widget when signed in.
// Signed out on an empty database (a first run), it says what this is and
// offers to create the first account, which becomes the administrator.
func handleHomePage(s Store, base *baseURL, ids idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		w := views.WidgetOptions{Max: defaultWidgetMax, Title: defaultWidgetTitle, BaseURL: base.of(c.Request())}
		firstRun := false
		if u, ok := currentUser(c); ok {
			w.ViewerID = ids.public(u)
		} else {
			// The landing page must not fail with the database: if it
			// cannot tell, it is not a first run.
			has, err := s.HasUsers(c.Request().Context())
			firstRun = err == nil && !has
		}
		return render(c, http.StatusOK, views.HomePage(pageFor(c, "Home"), w, firstRun))
	}
}
