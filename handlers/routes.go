package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
)

// addRoutes lists every route of the server.
func addRoutes(e *echo.Echo, d Deps, origins *originPolicy, hub *realtime.Hub, feed *realtime.Feed, broker *realtime.Broker, metrics echo.HandlerFunc, revs *realtime.Revocations, host hostSetup, prof profileSetup, friends *realtime.FriendsFeed) {
	auth := newAuthenticator(d.Store, d.Sessions, d.Config)
	auth.revocations = revs
	auth.host, auth.userEnds, auth.log = host.verifier, host.userEnds, d.Log
	auth.ids = idPolicy{hostMode: host.verifier != nil}
	auth.noLocal = d.Config.NoLocalAccounts
	local := localAccounts(!d.Config.NoLocalAccounts)
	limits := newLoginLimits(d.Config.LoginPerMinute, d.Config.RegisterPerHour, d.Clock, d.Store, d.Log)
	base := &baseURL{fixed: d.Config.PublicURL}

	e.Use(recoverPanics(d.Log))
	e.Use(origins.securityHeaders)
	e.Use(origins.apiCORS) // allow-listed origins may call /api/ (not /api/server/)
	e.Use(origins.csrf)    // cross-origin POSTs are refused
	e.Use(withEngine(d.Engine))
	if d.Config.Demo {
		e.Use(markDemo)
	}

	// Operations.
	e.GET("/healthz", handleHealthz(d.Store, d.Batcher, d.Cluster))
	e.GET("/metrics", metricsOnMain(metrics, d.Config.SeparateMetrics))

	// JSON API (trailing slashes as in the original app; both forms accepted).
	api := e.Group("/api")
	both(api, http.MethodPost, "/auth/register/", handleAPIRegister(d.Store, limits, auth.ids), local)
	both(api, http.MethodPost, "/auth/token/", handleAPIToken(d.Store, limits, d.Config.TokenTTL), local)
	online := handleAPIOnlineUsers(d.Store, d.Engine, auth.ids, base, d.Friends)
	both(api, http.MethodGet, "/users/online/", online, auth.requireAPI)
	both(api, http.MethodGet, "/auth/online/", online, auth.requireAPI) // where the original mounted it
	both(api, http.MethodGet, "/rooms/online/", handleAPIRoomsOnline(d.Store, d.Engine, auth.ids, base, d.Friends), auth.requireAPI)
	both(api, http.MethodGet, "/users/me/status/", handleAPIGetStatus(d.Engine), auth.requireAPI)
	both(api, http.MethodPut, "/users/me/status/", handleAPIPutStatus(d.Engine, friends), auth.requireAPI)
	both(api, http.MethodGet, "/users/:username/presence/", handleAPIUserPresence(d.Store, d.Engine, auth.ids, d.Friends), auth.requireAPI)
	both(api, http.MethodGet, "/users/:id/history/", handleAPIUserHistory(d.Store, d.Engine, auth.ids, d.Friends, historyDays(d.Config.HistoryDays)), auth.requireAPI)

	// Friends (api_friends.go); the original app's paginated list
	// (api_auth_friends.go).
	both(api, http.MethodGet, "/friends/", handleAPIFriends(d.Store, d.Engine, auth.ids), auth.requireAPI)
	both(api, http.MethodGet, "/friends/requests/", handleAPIFriendRequests(d.Store, auth.ids), auth.requireAPI)
	both(api, http.MethodPost, "/friends/requests/", handleAPIRequestFriend(d.Store, d.Engine, auth.ids, friends), auth.requireAPI)
	both(api, http.MethodPost, "/friends/requests/:id/accept/", handleAPIAcceptFriend(d.Store, d.Engine, auth.ids, friends), auth.requireAPI)
	both(api, http.MethodPost, "/friends/requests/:id/decline/", handleAPIDeclineFriend(d.Store), auth.requireAPI)
	both(api, http.MethodDelete, "/friends/:id/", handleAPIRemoveFriend(d.Store, auth.ids, friends), auth.requireAPI)
	both(api, http.MethodGet, "/friends/settings/", handleAPIFriendSettings(d.Store, friends), auth.requireAPI)
	both(api, http.MethodPut, "/friends/settings/", handleAPIFriendSettings(d.Store, friends), auth.requireAPI)
	both(api, http.MethodGet, "/auth/friends/", handleAPIAuthFriends(d.Store, d.Engine, auth.ids, base), auth.requireAPI)
	both(api, http.MethodGet, "/users/me/devices/", handleAPIDevices(hub), auth.requireAPI)
	both(api, http.MethodDelete, "/users/me/devices/:id/", handleAPIDeleteDevice(host.admin.devices), auth.requireAPI)

	// The host site's backend, with a server key (api_server.go).
	srv := api.Group("/server", requireServerKey(d.Store))
	both(srv, http.MethodPut, "/users/:id/", handleServerPutUser(d.Store, auth.ids))
	both(srv, http.MethodDelete, "/users/:id/", handleServerDeleteUser(d.Store, host.userEnds))
	both(srv, http.MethodPost, "/users/:id/disconnect/", handleServerDisconnect(d.Store, host.userEnds))
	both(srv, http.MethodPost, "/presence/query/", handleServerPresenceQuery(d.Store, d.Engine, auth.ids))
	both(srv, http.MethodPut, "/users/:id/friends/", handleServerPutFriends(d.Store, auth.ids, friends))

	// WebSocket keep-alive.
	e.GET("/ws/user-status/", handleWSUserStatus(hub, auth, origins, prof.zones))
	e.GET("/ws/user-status", handleWSUserStatus(hub, auth, origins, prof.zones))

	// The widget: an embeddable fragment, its shared list, its live stream.
	// No Timeout or Gzip middleware may wrap the stream.
	widgets := e.Group("/widgets/online-users", origins.widgetCORS)
	widgets.GET("", handleWidget(base), auth.requireViewer)
	widgets.GET("/list", handleWidgetList(feed, d.Store, d.Engine), auth.requireViewer)
	widgets.GET("/stream", handleWidgetStream(broker, auth), auth.requireViewer)
	widgets.OPTIONS("", noContent)
	widgets.OPTIONS("/list", noContent)
	widgets.OPTIONS("/stream", noContent)
	e.GET("/embed-example", handleEmbedExample(base))
	// Embedding on any site: one script tag, or a frame (docs/EMBEDDING.md).
	e.GET("/embed.js", handleEmbedScript())
	e.GET("/embed/online-users", handleEmbedFrame(base), auth.requireViewer)

	// HTML pages.
	profiles := profileDeps{store: d.Store, engine: d.Engine, ids: auth.ids, zones: prof.zones, clock: d.Clock, friends: d.Friends, history: historyDays(d.Config.HistoryDays)}
	e.GET("/", handleHomePage(d.Store, base, auth.ids), auth.optional)
	e.GET("/online", handleOnlinePage(d.Store, d.Engine, d.Friends), auth.requirePage)
	e.GET("/users/:username", handleProfilePage(profiles), auth.requirePage)
	e.GET("/host/users/:id", handleHostProfilePage(profiles), auth.requirePage) // views.ProfilePath
	e.GET("/friends", handleFriendsPage(d.Store, d.Engine, base, auth.ids), auth.requirePage)
	e.POST("/friends/requests", handleFriendRequestForm(d.Store, friends), auth.requirePage)
	e.POST("/friends/requests/:id/accept", handleFriendAcceptForm(d.Store, friends), auth.requirePage)
	e.POST("/friends/requests/:id/decline", handleFriendDeclineForm(d.Store), auth.requirePage)
	e.POST("/friends/:id/remove", handleFriendRemoveForm(d.Store, friends), auth.requirePage)
	e.POST("/friends/settings", handleFriendSettingsForm(d.Store, friends), auth.requirePage)
	e.GET("/login", handleLoginPage(), local, auth.optional)
	e.POST("/login", handleLogin(d.Store, limits, auth), local)
	e.GET("/register", handleRegisterPage(d.Store), local, auth.optional)
	e.POST("/register", handleRegister(d.Store, limits, auth), local)
	e.POST("/logout", handleLogout(auth))
	e.POST("/status", handleStatusForm(d.Engine, friends), auth.requirePage)

	// Settings: a page of sections, each posting its own form
	// (page_settings.go); uploaded avatars (avatars.go).
	e.GET("/settings", handleSettingsPage(d.Store, prof), auth.requirePage)
	e.POST("/settings/avatar", handleAvatarUpload(d.Store, prof), auth.requirePage)
	e.POST("/settings/avatar/remove", handleAvatarRemove(d.Store, prof), auth.requirePage)
	e.POST("/settings/local-time", handleLocalTimeSetting(d.Store), auth.requirePage)
	e.GET("/avatars/:name", handleAvatarFile(prof.avatars))
	e.GET("/devices", handleDevicesPage(hub, d.Clock), auth.requirePage)
	e.GET("/devices/list", handleDevicesList(hub, d.Clock), auth.requirePage)
	e.POST("/devices/:id/sign-out", handleDeviceSignOutForm(host.admin.devices), auth.requirePage)

	// Administrators only (admin.go): 403 for everyone else.
	addAdminRoutes(e, host.admin, auth)

	// The throwaway demo (presence serve --demo).
	if d.Config.Demo {
		e.GET("/demo/avatars/:file", handleDemoAvatar())
		e.POST("/demo/sign-in", handleDemoSignIn(d.Store, auth, d.Config.DemoPeople), local)
	}

	// Assets.
	e.GET("/static/*", handleStatic())
}

// engineKey is where withEngine puts the engine in the request context.
const engineKey = "presence.engine"

// withEngine is middleware that lets pageFor show the signed-in user's
// presence in the header's status menu.
func withEngine(e *presence.Engine) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(engineKey, e)
			return next(c)
		}
	}
}

// localAccounts is middleware for sign-up and password sign-in: 404 when
// local accounts are off (--local-accounts=false).
func localAccounts(on bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if on {
			return next
		}
		return func(echo.Context) error {
			return httpError(http.StatusNotFound, "local accounts are turned off on this server: sign in on the host site")
		}
	}
}

// noContent answers preflights that widgetCORS let through.
func noContent(c echo.Context) error { return c.NoContent(http.StatusNoContent) }

// both registers path with and without its trailing slash.
func both(g *echo.Group, method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	g.Add(method, path, h, m...)
	g.Add(method, path[:len(path)-1], h, m...)
}
