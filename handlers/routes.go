package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/static"
)

// addRoutes lists every route of the server.
func addRoutes(e *echo.Echo, d Deps, origins *originPolicy, hub *wsHub) {
	auth := newAuthenticator(d.Store, d.Sessions, d.Config)

	e.Use(recoverPanics(d.Log))
	e.Use(origins.csrf) // cross-origin POSTs are refused

	// Operations.
	e.GET("/healthz", handleHealthz(d.Store, d.Batcher))
	e.GET("/metrics", handleMetrics(d.Store, d.Engine, d.Batcher, hub))

	// JSON API (trailing slashes as in the original app; both forms accepted).
	api := e.Group("/api")
	both(api, http.MethodPost, "/auth/register/", handleAPIRegister(d.Store))
	both(api, http.MethodPost, "/auth/token/", handleAPIToken(d.Store, d.Config.TokenTTL))
	online := handleAPIOnlineUsers(d.Store, d.Engine)
	both(api, http.MethodGet, "/users/online/", online, auth.requireAPI)
	both(api, http.MethodGet, "/auth/online/", online, auth.requireAPI) // where the original mounted it

	// WebSocket keep-alive.
	e.GET("/ws/user-status/", handleWSUserStatus(hub, auth, origins))
	e.GET("/ws/user-status", handleWSUserStatus(hub, auth, origins))

	// HTML pages.
	e.GET("/", handleHomePage(), auth.optional)
	e.GET("/login", handleLoginPage(), auth.optional)
	e.POST("/login", handleLogin(d.Store, auth))
	e.GET("/register", handleRegisterPage(), auth.optional)
	e.POST("/register", handleRegister(d.Store, auth))
	e.POST("/logout", handleLogout(auth))

	// Assets.
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServerFS(static.FS))))
}

// both registers path with and without its trailing slash.
func both(g *echo.Group, method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	g.Add(method, path, h, m...)
	g.Add(method, path[:len(path)-1], h, m...)
}
