package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/realtime"
)

// addRoutes lists every route of the server.
func addRoutes(e *echo.Echo, d Deps, origins *originPolicy, hub *realtime.Hub, feed *realtime.Feed, broker *realtime.Broker, metrics echo.HandlerFunc, revs *realtime.Revocations) {
	auth := newAuthenticator(d.Store, d.Sessions, d.Config)
	auth.revocations = revs
	limits := newLoginLimits(d.Config.LoginPerMinute, d.Config.RegisterPerHour, d.Clock)
	base := &baseURL{fixed: d.Config.PublicURL}

	e.Use(recoverPanics(d.Log))
	e.Use(origins.securityHeaders)
	e.Use(origins.csrf) // cross-origin POSTs are refused

	// Operations.
	e.GET("/healthz", handleHealthz(d.Store, d.Batcher))
	e.GET("/metrics", metricsOnMain(metrics, d.Config.SeparateMetrics))

	// JSON API (trailing slashes as in the original app; both forms accepted).
	api := e.Group("/api")
	both(api, http.MethodPost, "/auth/register/", handleAPIRegister(d.Store, limits))
	both(api, http.MethodPost, "/auth/token/", handleAPIToken(d.Store, limits, d.Config.TokenTTL))
	online := handleAPIOnlineUsers(d.Store, d.Engine)
	both(api, http.MethodGet, "/users/online/", online, auth.requireAPI)
	both(api, http.MethodGet, "/auth/online/", online, auth.requireAPI) // where the original mounted it

	// WebSocket keep-alive.
	e.GET("/ws/user-status/", handleWSUserStatus(hub, auth, origins))
	e.GET("/ws/user-status", handleWSUserStatus(hub, auth, origins))

	// The widget: an embeddable fragment, its shared list, its live stream.
	// No Timeout or Gzip middleware may wrap the stream.
	widgets := e.Group("/widgets/online-users", origins.widgetCORS)
	widgets.GET("", handleWidget(base), auth.requireViewer)
	widgets.GET("/list", handleWidgetList(feed), auth.requireViewer)
	widgets.GET("/stream", handleWidgetStream(broker, auth), auth.requireViewer)
	widgets.OPTIONS("", noContent)
	widgets.OPTIONS("/list", noContent)
	widgets.OPTIONS("/stream", noContent)
	e.GET("/embed-example", handleEmbedExample(base))

	// HTML pages.
	e.GET("/", handleHomePage(d.Store, base), auth.optional)
	e.GET("/online", handleOnlinePage(d.Store, d.Engine), auth.requirePage)
	e.GET("/users/:username", handleProfilePage(d.Store, d.Engine), auth.requirePage)
	e.GET("/login", handleLoginPage(), auth.optional)
	e.POST("/login", handleLogin(d.Store, limits, auth))
	e.GET("/register", handleRegisterPage(d.Store), auth.optional)
	e.POST("/register", handleRegister(d.Store, limits, auth))
	e.POST("/logout", handleLogout(auth))

	// Assets.
	e.GET("/static/*", handleStatic())
}

// noContent answers preflights that widgetCORS let through.
func noContent(c echo.Context) error { return c.NoContent(http.StatusNoContent) }

// both registers path with and without its trailing slash.
func both(g *echo.Group, method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	g.Add(method, path, h, m...)
	g.Add(method, path[:len(path)-1], h, m...)
}
