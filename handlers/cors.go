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

// apiCORS lets allow-listed origins (--allowed-origins) call the JSON API
// from the browser: a frontend on app.example.com calling a Presence on
// presence.example.com with its Bearer token. It answers preflights
// (Authorization and Content-Type headers) itself. The server API
// (/api/server/) is left out: a server key must never be in a browser.
// Other origins get no CORS headers, so browsers keep the response from
// them, and their preflights get 403.
func (p *originPolicy) apiCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		path := r.URL.Path
		if !strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/api/server/") || path == "/api/server" {
			return next(c)
		}
		h := c.Response().Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" || !p.allowed[strings.ToLower(strings.TrimRight(origin, "/"))] {
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				return httpError(http.StatusForbidden, "origin not allowed")
			}
			return next(c)
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "Retry-After") // 429 and 503 say when to come back
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}
