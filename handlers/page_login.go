package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// handleLoginPage renders the login form.
func handleLoginPage() echo.HandlerFunc {
	return func(c echo.Context) error {
		return render(c, http.StatusOK, views.LoginPage(pageFor(c, "Log in"), views.AuthForm{}))
	}
}

// handleLogin checks the form's credentials, starts a fresh session and
// redirects (303) home; a bad login re-renders the form with 401.
func handleLogin(s Store, limits *loginLimits, auth *authenticator) echo.HandlerFunc {
	return func(c echo.Context) error {
		cr, err := readCredentials(c)
		form := views.AuthForm{Username: cr.Username}
		if err != nil {
			form.Error = errorDetail(err)
			return render(c, http.StatusBadRequest, views.LoginPage(pageFor(c, "Log in"), form))
		}
		if err := limits.check(c, cr.Username); err != nil {
			form.Error = errorDetail(err)
			return render(c, http.StatusTooManyRequests, views.LoginPage(pageFor(c, "Log in"), form))
		}
		u, err := s.Authenticate(c.Request().Context(), cr.Username, cr.Password)
		if errors.Is(err, store.ErrInvalidLogin) {
			form.Error = "Invalid username or password."
			return render(c, http.StatusUnauthorized, views.LoginPage(pageFor(c, "Log in"), form))
		}
		limits.notAFailure(c, cr.Username) // a right password, or a database failure
		if err != nil {
			return err
		}
		if err := auth.signIn(c, u); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/")
	}
}

// errorDetail returns the user-facing message of an HTTP error.
func errorDetail(err error) string {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if s, ok := he.Message.(string); ok {
			return s
		}
	}
	return "Something went wrong."
}
