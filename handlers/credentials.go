package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// maxCredentialsBody bounds the body of login and register requests.
const maxCredentialsBody = 8 << 10

// credentials are the username and password of a login or register request.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// readCredentials reads username and password from a JSON object or a
// form body (HTML forms, old clients). A body that starts with "{" is JSON
// whatever its Content-Type says, since `curl -d '{...}'` labels JSON as a form.
func readCredentials(c echo.Context) (credentials, error) {
	r := c.Request()
	var cr credentials
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxCredentialsBody))
	if err != nil {
		return cr, bodyError(err)
	}
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return cr, httpError(http.StatusBadRequest, "request body is empty")
	case trimmed[0] == '{':
		if err := json.Unmarshal(trimmed, &cr); err != nil {
			return cr, bodyError(err)
		}
	case strings.HasPrefix(r.Header.Get(echo.HeaderContentType), echo.MIMEApplicationForm):
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return cr, httpError(http.StatusBadRequest, "malformed form body")
		}
		cr.Username, cr.Password = form.Get("username"), form.Get("password")
	default:
		return cr, bodyError(errors.New("not JSON"))
	}
	cr.Username = strings.TrimSpace(cr.Username)
	if cr.Username == "" || cr.Password == "" {
		return cr, httpError(http.StatusBadRequest, "username and password are required")
	}
	return cr, nil
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return httpError(http.StatusRequestEntityTooLarge, "request body too large")
	default:
		return httpError(http.StatusBadRequest, "request body must be a JSON object with username and password")
	}
}
