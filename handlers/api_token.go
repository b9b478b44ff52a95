package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/store"
)

// handleAPIToken exchanges a username and password for an access token:
// 200 {"access","token_type":"Bearer"}, 401 {"detail"} otherwise, 429
// when the client or the account is over its attempt limit.
func handleAPIToken(s Store, limits *loginLimits, ttl time.Duration) echo.HandlerFunc {
	return func(c echo.Context) error {
		cr, err := readCredentials(c)
		if err != nil {
			return err
		}
		if err := limits.check(c, cr.Username); err != nil {
			return err
		}
		ctx := c.Request().Context()
		u, err := s.Authenticate(ctx, cr.Username, cr.Password)
		if errors.Is(err, store.ErrInvalidLogin) {
			return httpError(http.StatusUnauthorized, "no active account found with the given credentials")
		}
		limits.notAFailure(c, cr.Username) // a right password, or a database failure
		if err != nil {
			return err
		}
		tok, err := s.CreateToken(ctx, u.ID, store.TokenAPI, ttl)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"access": tok, "token_type": "Bearer"})
	}
}
