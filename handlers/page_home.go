package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// handleHomePage renders the landing page, with the widget when signed in.
func handleHomePage(base *baseURL) echo.HandlerFunc {
	return func(c echo.Context) error {
		w := views.WidgetOptions{Max: defaultWidgetMax, Title: defaultWidgetTitle, BaseURL: base.of(c.Request())}
		if u, ok := currentUser(c); ok {
			w.ViewerID = u.ID
		}
		return render(c, http.StatusOK, views.HomePage(pageFor(c, "Home"), w))
	}
}
