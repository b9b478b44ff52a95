package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// handleLogout revokes the session (an old copy of the cookie stops working),
// which closes its WebSockets (1008) and ends its event streams in every
// tab at once, and redirects (303) to the login page.
func handleLogout(auth *authenticator) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := auth.signOut(c); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/login")
	}
}
