package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// handleEmbedFrame serves /embed/online-users: the widget alone on a
// minimal page, for host sites that frame it instead of running embed.js
// (a strict Content-Security-Policy). It takes the widget's options and
// credentials (?token=, ?embed_token=); with ?token= the page also keeps
// the viewer online, unless ?keepalive=0. Only --allowed-origins may frame
// it (securityHeaders).
func handleEmbedFrame(base *baseURL) echo.HandlerFunc {
	return func(c echo.Context) error {
		o, err := widgetOptions(c, base.of(c.Request()))
		if err != nil {
			return err
		}
		d := views.EmbedFrameData{Widget: o}
		if v, ok := c.Get(viewerKey).(widgetViewer); ok && v.token != "" && c.QueryParam("keepalive") != "0" {
			d.KeepAliveToken = v.token
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		c.Response().Header().Set("Referrer-Policy", "no-referrer") // the URL carries a token
		return render(c, http.StatusOK, views.EmbedFrame(d))
	}
}
