package handlers

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/presencehq/presence/views"
)

// BenchmarkWidgetRender renders the shared widget fragment with the most
// users it carries: the cost of one push, paid once for all viewers.
func BenchmarkWidgetRender(b *testing.B) {
	users := make([]views.WidgetUser, maxWidgetMax+1)
	for i := range users {
		users[i] = views.WidgetUser{ID: strconv.Itoa(i), Username: fmt.Sprintf("user%04d", i)}
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		views.WidgetList(users, views.Count{Total: 9000, Version: "v1-1"}, "v1-1").Render(context.Background(), &buf)
	}
	b.ReportMetric(float64(buf.Len()), "bytes/fragment")
}
