package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
	"github.com/presencehq/presence/views"
)

// adminArea is /admin: what administrators see and may do. Every action
// is logged and recorded in the admin audit table.
type adminArea struct {
	store    Store
	engine   *presence.Engine
	hub      *realtime.Hub
	widgets  *realtime.Broker // the widget streams, to end a kicked user's
	stream   *realtime.Broker // the admin figures stream
	revs     *realtime.Revocations
	userEnds *realtime.UserEnds
	devices  *deviceSignOut
	figures  *figureSampler
	clock    presence.Clock
	log      *slog.Logger
}

// requireAdmin is middleware for everything under /admin: 403 for anyone
// who is not a signed-in administrator, anonymous visitors included, so
// the area's routes are not even confirmed to exist.
func (a *authenticator) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := a.resolve(c, false)
		if err != nil || !u.IsAdmin {
			return httpError(http.StatusForbidden, "administrators only")
		}
		c.Set(userKey, u)
		return next(c)
	}
}

// record logs an administrator's action and stores it in the audit table.
func (ad *adminArea) record(c echo.Context, action, target, detail string) error {
	me, _ := currentUser(c)
	ad.log.Info("admin action", "admin", me.Username, "action", action, "target", target, "detail", detail, "client", c.RealIP())
	return ad.store.RecordAdminAction(c.Request().Context(), store.AdminAction{
		AdminID: me.ID, AdminName: me.Username, Action: action, Target: target, Detail: detail})
}

// flashes are the messages /admin?done= may show: fixed texts, so a link
// cannot make the page say anything else.
var flashes = map[string]string{
	"kicked-connection": "The connection was closed and its session or token revoked.",
	"kicked-user":       "The user's connections were closed and their sessions and tokens revoked.",
	"revoked-token":     "The token was revoked; its sockets and streams are closed.",
	"promoted":          "The user is now an administrator.",
	"demoted":           "The user is no longer an administrator.",
}

// page serves GET /admin.
func (ad *adminArea) page(c echo.Context) error {
	ctx := c.Request().Context()
	d := views.AdminData{Now: ad.clock.Now(), Samples: ad.figures.Samples(), Flash: flashes[c.QueryParam("done")]}
	var err error
	if d.Users, err = ad.onlineUsers(ctx); err != nil {
		return err
	}
	audit, err := ad.store.AdminActions(ctx, 20)
	if err != nil {
		return err
	}
	for _, a := range audit {
		d.Audit = append(d.Audit, views.AdminAudit{At: a.At, Admin: a.AdminName, Action: a.Action, Target: a.Target, Detail: a.Detail})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.AdminPage(pageFor(c, "Administration"), d))
}

// onlineUsers is every online user with their open sockets.
func (ad *adminArea) onlineUsers(ctx context.Context) ([]views.AdminUser, error) {
	byUser := map[int64][]views.AdminConn{}
	for _, ci := range ad.hub.Connections() {
		byUser[ci.UserID] = append(byUser[ci.UserID], adminConn(ci))
	}
	online := ad.engine.Online()
	ids := make([]int64, len(online))
	for i, st := range online {
		ids[i] = st.UserID
	}
	profiles, err := ad.store.UsersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	users := make([]views.AdminUser, 0, len(online))
	for _, st := range online {
		users = append(users, views.AdminUser{ID: st.UserID, Username: st.Username, IsAdmin: profiles[st.UserID].IsAdmin, Conns: byUser[st.UserID]})
	}
	return users, nil
}

// connectionsFragment serves GET /admin/connections: the users table
// alone, which /admin refreshes every few seconds.
func (ad *adminArea) connectionsFragment(c echo.Context) error {
	users, err := ad.onlineUsers(c.Request().Context())
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.AdminUsersTable(users, ad.clock.Now()))
}

func adminConn(ci realtime.ConnInfo) views.AdminConn {
	return views.AdminConn{ID: ci.ID, Device: ci.Device.Label(), Kind: ci.Device.Kind, Since: ci.Since, Active: ci.LastActivity, Room: ci.Room}
}

// figuresFragment serves GET /admin/figures: the figures and chart the
// stream pushes.
func (ad *adminArea) figuresFragment(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.AdminFigures(ad.figures.Samples()))
}

// liveStream serves GET /admin/stream: the figures, pushed as they are
// sampled. It ends when the administrator's session does, or when they
// are demoted.
func (ad *adminArea) liveStream(auth *authenticator) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, err := auth.watch(c)
		if err != nil {
			return err
		}
		me, _ := currentUser(c)
		return refusal(c, ad.stream.Serve(ctx, c.Response().Writer, c.Request(), adminOwner(me.ID)))
	}
}

func adminOwner(id int64) string { return "admin:" + strconv.FormatInt(id, 10) }

// userPage serves GET /admin/users/{name}: a user's connections, tokens
// and role. GET /admin/users?username= redirects to it.
func (ad *adminArea) userPage(c echo.Context) error {
	if c.Param("name") == "" {
		name := c.QueryParam("username")
		if name == "" {
			return httpError(http.StatusBadRequest, "username is required")
		}
		return c.Redirect(http.StatusSeeOther, "/admin/users/"+url.PathEscape(name))
	}
	u, err := ad.user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	tokens, err := ad.store.TokensOf(ctx, u.ID)
	if err != nil {
		return err
	}
	now := ad.clock.Now()
	d := views.AdminUserData{Now: now, Username: u.Username, IsAdmin: u.IsAdmin}
	for _, ci := range ad.hub.ConnectionsOf(u.ID) {
		d.Conns = append(d.Conns, adminConn(ci))
	}
	for _, t := range tokens {
		d.Tokens = append(d.Tokens, views.AdminToken{ShortID: t.ShortID, Kind: string(t.Kind), Created: t.CreatedAt,
			Expires: t.ExpiresAt, LastUsed: t.LastUsedAt, Revoked: !t.RevokedAt.IsZero(), Live: t.Live(now)})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.AdminUserPage(pageFor(c, u.Username+" · Administration"), d))
}

// user loads the user named by the path, or 404.
func (ad *adminArea) user(c echo.Context) (store.User, error) {
	name, err := url.PathUnescape(c.Param("name"))
	if err != nil {
		return store.User{}, httpError(http.StatusBadRequest, "invalid username in the path")
	}
	u, err := ad.store.UserByName(c.Request().Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return u, httpError(http.StatusNotFound, "no such user")
	}
	return u, err
}

// kickConnection serves POST /admin/connections/{id}/kick: the socket is
// closed (1008) and the session or token that opened it revoked, as when
// its owner signs it out (a browser would reconnect at once otherwise).
func (ad *adminArea) kickConnection(c echo.Context) error {
	ci, err := ad.devices.signOut(c.Request().Context(), 0, c.Param("id"), "disconnected by an administrator")
	if err != nil {
		return err
	}
	if err := ad.record(c, "kick-connection", ci.Username, ci.Device.Label()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin?done=kicked-connection")
}

// kickUser serves POST /admin/users/{name}/kick: every socket (1008) and
// widget stream of the user ends, and their sessions and API tokens are
// revoked (embed tokens are left alone: they are the host site's). A host
// user's JWTs issued before now are refused.
func (ad *adminArea) kickUser(c echo.Context) error {
	u, err := ad.user(c)
	if err != nil {
		return err
	}
	if me, _ := currentUser(c); me.ID == u.ID {
		return httpError(http.StatusBadRequest, "you cannot kick yourself: log out instead")
	}
	// Closed first, so that the sockets say why; then the credentials
	// are revoked, which also ends anything that reconnected meanwhile.
	sockets := ad.hub.CloseUser(u.ID, "disconnected by an administrator")
	streams := ad.widgets.EndOwner("user:" + strconv.FormatInt(u.ID, 10))
	if u.IsHost() {
		ad.userEnds.End(u.ID)
	}
	revoked, err := ad.revokeLive(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	detail := strconv.Itoa(sockets) + " socket(s), " + strconv.Itoa(streams) + " stream(s), " + strconv.Itoa(revoked) + " token(s) revoked"
	if err := ad.record(c, "kick-user", u.Username, detail); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin?done=kicked-user")
}

// revokeLive revokes every live session and API token of the user.
func (ad *adminArea) revokeLive(ctx context.Context, userID int64) (int, error) {
	tokens, err := ad.store.TokensOf(ctx, userID)
	if err != nil {
		return 0, err
	}
	now := ad.clock.Now()
	var ids []int64
	for _, t := range tokens {
		if t.Kind == store.TokenEmbed || !t.Live(now) {
			continue
		}
		if err := ad.store.RevokeTokenID(ctx, userID, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return len(ids), err
		}
		ids = append(ids, t.ID)
	}
	ad.revs.Revoke(ids...)
	return len(ids), nil
}

// revokeToken serves POST /admin/tokens/{id}/revoke and POST
// /admin/tokens/revoke (form field id): the token with that short id is
// revoked and its connections end.
func (ad *adminArea) revokeToken(c echo.Context) error {
	id := c.Param("id")
	if id == "" {
		id = c.FormValue("id")
	}
	t, err := ad.store.RevokeTokenByShortID(c.Request().Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return httpError(http.StatusNotFound, "no token has that id (give at least 4 hex digits)")
	case errors.Is(err, store.ErrAmbiguousToken):
		return httpError(http.StatusConflict, "more than one token starts with that id: give more digits")
	case err != nil:
		return err
	}
	ad.revs.Revoke(t.ID)
	if err := ad.record(c, "revoke-token", t.ShortID, string(t.Kind)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin?done=revoked-token")
}

// setAdmin serves POST /admin/users/{name}/promote and …/demote. An
// administrator cannot demote themself, so the server always keeps one.
func (ad *adminArea) setAdmin(admin bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := ad.user(c)
		if err != nil {
			return err
		}
		me, _ := currentUser(c)
		if !admin && me.ID == u.ID {
			return httpError(http.StatusBadRequest, "you cannot demote yourself: ask another administrator")
		}
		if err := ad.store.SetAdmin(c.Request().Context(), u.ID, admin); err != nil {
			return err
		}
		action, done := "promote", "promoted"
		if !admin {
			action, done = "demote", "demoted"
			ad.stream.EndOwner(adminOwner(u.ID)) // no more figures for them
		}
		if err := ad.record(c, action, u.Username, ""); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/admin/users/"+url.PathEscape(u.Username)+"?done="+done)
	}
}

// addAdminRoutes mounts /admin. Every route, and every path under /admin
// that is not one, answers 403 to anyone but an administrator.
func addAdminRoutes(e *echo.Echo, ad *adminArea, auth *authenticator) {
	g := e.Group("/admin", auth.requireAdmin)
	g.GET("", ad.page)
	g.GET("/", ad.page)
	g.GET("/figures", ad.figuresFragment)
	g.GET("/connections", ad.connectionsFragment)
	g.GET("/stream", ad.liveStream(auth))
	g.GET("/users", ad.userPage)
	g.GET("/users/:name", ad.userPage)
	g.POST("/users/:name/kick", ad.kickUser)
	g.POST("/users/:name/promote", ad.setAdmin(true))
	g.POST("/users/:name/demote", ad.setAdmin(false))
	g.POST("/connections/:id/kick", ad.kickConnection)
	g.POST("/tokens/revoke", ad.revokeToken)
	g.POST("/tokens/:id/revoke", ad.revokeToken)
	g.Any("/*", func(echo.Context) error { return echo.ErrNotFound })
}

// newAdminArea builds /admin for server s, whose hub, widget broker and
// revocations it acts through. Its figures stream counts against conns
// like every other stream.
func newAdminArea(d Deps, s *Server, conns *realtime.ConnCap) *adminArea {
	stream := realtime.NewBroker(realtime.BrokerConfig{
		KeepAlive:    d.Config.SSEKeepAlive,
		WriteTimeout: sseWriteTimeout,
		Conns:        conns,
		Clock:        d.Clock,
		MaxPerOwner:  8,
	})
	ad := &adminArea{
		store: d.Store, engine: d.Engine, hub: s.ws, widgets: s.broker, stream: stream,
		revs: s.revs, userEnds: s.userEnds, clock: d.Clock, log: d.Log,
		devices: &deviceSignOut{hub: s.ws, store: d.Store, revs: s.revs, log: d.Log},
	}
	ad.figures = newFigureSampler(d.Clock, d.Store, d.Engine, s.ws, s.broker, stream)
	return ad
}
