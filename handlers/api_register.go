package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/store"
)

// handleAPIRegister creates an account: 201 {"id","username","is_admin"}
// (the first account on an empty database is the administrator), 400 for
// invalid input, 409 when the name is taken, 429 past the per-address limit.
// The id is the public one: "local:N" on a server that takes host JWTs.
func handleAPIRegister(s Store, limits *loginLimits, idp idPolicy) echo.HandlerFunc {
	return func(c echo.Context) error {
		cr, err := readCredentials(c)
		if err != nil {
			return err
		}
		if err := limits.checkRegister(c); err != nil {
			return err
		}
		u, err := s.CreateUser(c.Request().Context(), cr.Username, cr.Password)
		if err != nil {
			return accountError(err)
		}
		return c.JSON(http.StatusCreated, map[string]any{"id": restID(idp.public(u)), "username": u.Username, "is_admin": u.IsAdmin})
	}
}

// accountError maps account creation errors to responses.
func accountError(err error) error {
	switch {
	case errors.Is(err, store.ErrInvalidUsername), errors.Is(err, store.ErrInvalidPassword):
		return httpError(http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrUsernameTaken):
		return httpError(http.StatusConflict, "a user with that username already exists")
	}
	return err
}
