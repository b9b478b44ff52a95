package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/views"
)

// handleEmbedExample serves a host page that embeds the widget exactly as
// docs/EMBEDDING.md says, so people can see it work.
func handleEmbedExample(base *baseURL) echo.HandlerFunc {
	return func(c echo.Context) error {
		return render(c, http.StatusOK, views.EmbedExample(base.of(c.Request())))
	}
}
