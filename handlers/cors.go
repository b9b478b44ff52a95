package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// widgetCORS lets other origins fetch the widget routes (the host page's
// hx-get and EventSource, both with credentials). It answers preflights
// itself. Allow-listed origins may use the viewer's session cookie. Any
// origin may use an embed token: requests carrying ?embed_token= are
// answered from the token alone, cookies ignored, so sharing the response
// leaks nothing. Other origins get no CORS headers, and browsers refuse to
// hand them the response.
func (p *originPolicy) widgetCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Add("Vary", "Origin")
		origin := c.Request().Header.Get("Origin")
		allowed := p.allowed[strings.ToLower(strings.TrimRight(origin, "/"))] ||
			(c.QueryParam("embed_token") != "" && c.Request().Header.Get("Authorization") == "")
		if origin == "" || !allowed {
			if c.Request().Method == http.MethodOptions {
				return c.NoContent(http.StatusForbidden)
			}
			return next(c)
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		if c.Request().Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET")
			h.Set("Access-Control-Allow-Headers", "Authorization, HX-Request, HX-Current-URL, HX-Target, HX-Trigger, HX-Trigger-Name, Cache-Control, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}
