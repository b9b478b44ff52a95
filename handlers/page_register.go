package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// handleRegisterPage renders the sign-up form; on an empty database it
// says that this first account becomes the administrator.
func handleRegisterPage(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Only a hint: if the database cannot tell, the form still shows.
		has, err := s.HasUsers(c.Request().Context())
		return render(c, http.StatusOK, views.RegisterPage(pageFor(c, "Register"), views.AuthForm{FirstAccount: err == nil && !has}))
	}
}

// handleRegister creates the account, signs the new user in and redirects
// (303) home; invalid input re-renders the form with the reason.
func handleRegister(s Store, limits *loginLimits, auth *authenticator) echo.HandlerFunc {
	return func(c echo.Context) error {
		cr, err := readCredentials(c)
		form := views.AuthForm{Username: cr.Username}
		if err != nil {
			form.Error = errorDetail(err)
			return render(c, http.StatusBadRequest, views.RegisterPage(pageFor(c, "Register"), form))
		}
		if err := limits.checkRegister(c); err != nil {
			form.Error = errorDetail(err)
			return render(c, http.StatusTooManyRequests, views.RegisterPage(pageFor(c, "Register"), form))
		}
		u, err := s.CreateUser(c.Request().Context(), cr.Username, cr.Password)
		if err != nil {
			var he *echo.HTTPError
			if !errors.As(accountError(err), &he) {
				return err
			}
			form.Error = errorDetail(he)
			return render(c, he.Code, views.RegisterPage(pageFor(c, "Register"), form))
		}
		if err := auth.signIn(c, u); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/")
	}
}
