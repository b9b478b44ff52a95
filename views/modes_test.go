package views_test

import (
	"testing"

	"github.com/presencehq/presence/views"
)

func TestWidgetTip(t *testing.T) {
	for _, c := range []struct {
		u    views.WidgetUser
		want string
	}{
		{views.WidgetUser{Username: "ann"}, "ann · online now"},
		{views.WidgetUser{Username: "ann", Mode: "online", StatusEmoji: "🎧"}, "ann · online now · 🎧"},
		{views.WidgetUser{Username: "ann", Mode: "away", StatusText: "lunch"}, "ann · away · lunch"},
		{views.WidgetUser{Username: "ann", Mode: "dnd", StatusText: "deep work", StatusEmoji: "🎧"}, "ann · do not disturb · 🎧 deep work"},
	} {
		if got := views.WidgetTip(c.u); got != c.want {
			t.Errorf("WidgetTip(%+v) = %q, want %q", c.u, got, c.want)
		}
	}
}
