package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// handleHomePage renders the landing page.
func handleHomePage() echo.HandlerFunc {
	return func(c echo.Context) error {
		return render(c, http.StatusOK, views.HomePage(pageFor(c, "Home")))
	}
}
