package views_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"github.com/presencehq/presence/views"
)

func mustRender(tb testing.TB, c templ.Component) *goquery.Document {
	tb.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		tb.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

func byTestID(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(`[data-testid="` + id + `"]`)
}

func TestOnlineUsersWidget(t *testing.T) {
	doc := mustRender(t, views.OnlineUsersWidget(views.WidgetOptions{
		ViewerID: "local:7", Max: 3, Title: "<b>Team</b>", Class: "mt-4 shadow-none",
		BaseURL: "https://presence.example", Query: "?embed_token=prs_x",
	}))
	w := byTestID(doc, "online-users-widget")
	if w.Length() != 1 {
		t.Fatal("no widget root")
	}
	for attr, want := range map[string]string{
		"data-viewer-id": "local:7",
		"data-max":       "3",
		"data-state":     "loading",
		"hx-ext":         "sse",
		"sse-connect":    "https://presence.example/widgets/online-users/stream?embed_token=prs_x",
	} {
		if got, _ := w.Attr(attr); got != want {
			t.Errorf("%s = %q, want %q", attr, got, want)
		}
	}
	if !w.HasClass("mt-4") || !w.HasClass("bg-[linear-gradient(135deg,#dc2626,#1e3a8a)]") {
		t.Errorf("class = %q", w.AttrOr("class", ""))
	}
	if got := byTestID(doc, "widget-title").Text(); got != "<b>Team</b>" {
		t.Errorf("title = %q: must be text, not markup", got)
	}
	body := byTestID(doc, "widget-body")
	if got := body.AttrOr("hx-get", ""); got != "https://presence.example/widgets/online-users/list?embed_token=prs_x" {
		t.Errorf("hx-get = %q", got)
	}
	if body.AttrOr("sse-swap", "") != "presence" {
		t.Error("list does not swap the presence event")
	}
	// The count's and the deltas' events reach an element no list fetch
	// replaces (one that is replaced misses events until htmx settles it).
	if got := w.Find("[data-presence-delta]").AttrOr("sse-swap", ""); got != "presence-delta,presence-count" {
		t.Errorf("data-presence-delta sse-swap = %q", got)
	}
	if byTestID(doc, "widget-skeleton").Find("li").Length() != views.WidgetSkeletonCards {
		t.Error("no loading skeleton")
	}
	if byTestID(doc, "widget-error").Length() != 1 || byTestID(doc, "widget-reconnecting").Length() != 1 {
		t.Error("missing error or reconnecting state")
	}
	if href := byTestID(doc, "widget-view-all").AttrOr("href", ""); href != "https://presence.example/online" {
		t.Errorf("view all link = %q", href)
	}
}

func TestWidgetList(t *testing.T) {
	doc := mustRender(t, views.WidgetList([]views.WidgetUser{
		{ID: "1", Username: "alice", ProfileImageURL: "https://img.example/a.png"},
		{ID: "2", Username: "<img src=x onerror=alert(1)>"},
		{ID: "3", Username: "bob", ProfileImageURL: "javascript:alert(1)"},
	}, views.Count{Total: 5, Version: "v1-9"}, "v1-7"))
	if v := doc.Find(`[data-testid="widget-grid"]`).AttrOr("data-presence-version", ""); v != "v1-7" || doc.Find("[data-presence-grid]").Length() != 1 {
		t.Errorf("grid version = %q", v)
	}
	if got := byTestID(doc, "widget-count").Text(); got != "5 online" {
		t.Errorf("count = %q", got)
	}
	if v := byTestID(doc, "widget-count").AttrOr("data-presence-count-version", ""); v != "v1-9" {
		t.Errorf("count version = %q", v)
	}
	// Every list fetch replaces these elements: none may listen to the
	// stream (until htmx settles a new one, its events would be lost).
	if n := doc.Find("[sse-swap]").Length(); n != 0 {
		t.Errorf("%d elements of the list listen to the stream", n)
	}
	users := byTestID(doc, "widget-user")
	if users.Length() != 3 {
		t.Fatalf("%d cards", users.Length())
	}
	if src := users.Eq(0).Find("img").AttrOr("src", ""); src != "https://img.example/a.png" {
		t.Errorf("avatar src = %q", src)
	}
	evil := users.Eq(1)
	if evil.Find("img").Length() != 0 || evil.Find(`[data-testid="widget-username"]`).Text() != "<img src=x onerror=alert(1)>" {
		t.Error("username rendered as markup")
	}
	if got := evil.Find("a").AttrOr("data-username", ""); got != "<img src=x onerror=alert(1)>" {
		t.Errorf("data-username = %q", got)
	}
	if initial := evil.Find("span[aria-hidden]").Text(); initial != "<" {
		t.Errorf("fallback initial = %q", initial)
	}
	if src := users.Eq(2).Find("img").AttrOr("src", ""); src == "javascript:alert(1)" {
		t.Error("unsafe avatar URL kept")
	}
	if users.Eq(0).Find(`[data-testid="online-dot"]`).Length() != 1 {
		t.Error("no online dot")
	}
	// The tooltip is drawn by CSS (.pw-card::after) from data-username.
	if a := users.Eq(0).Find("a"); !a.HasClass("pw-card") || a.AttrOr("data-username", "") != "alice" {
		t.Error("card lacks what the CSS tooltip needs")
	}
	if href := users.Eq(0).Find("a").AttrOr("href", ""); href != "/users/alice" {
		t.Errorf("card link = %q", href)
	}
	if byTestID(doc, "widget-empty").Text() != "No users online right now" {
		t.Error("no empty state")
	}
}

// TestWidgetDelta: a delta is out-of-band swaps aimed only at grids at its
// From version, in order: removals, then each insert before a tile already
// there (or at the end), then the count. Usernames stay text; selectors
// carry only numbers.
func TestWidgetDelta(t *testing.T) {
	var buf bytes.Buffer
	err := views.WidgetDelta(views.ListDelta{From: "vab-3", To: "vab-4", Removed: []string{"7"},
		Inserted: []views.WidgetInsert{
			{User: views.WidgetUser{ID: "9", Username: `"]<img src=x onerror=alert(1)>`}, Before: ""},
			{User: views.WidgetUser{ID: "8", Username: "amy"}, Before: "9"},
		}, Count: views.Count{Total: 12, Version: "vab-5"}}).Render(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	doc, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if m := doc.Find("[data-presence-from]"); m.AttrOr("data-presence-from", "") != "vab-3" || m.AttrOr("data-presence-to", "") != "vab-4" {
		t.Fatalf("version marker: %s", raw)
	}
	var ops []string
	doc.Find("[hx-swap-oob]").Each(func(_ int, s *goquery.Selection) { ops = append(ops, s.AttrOr("hx-swap-oob", "")) })
	grid := `[data-presence-grid][data-presence-version=vab-3]`
	want := []string{"delete:" + grid + ` li[data-user-id="7"]`, "beforeend:" + grid, "beforebegin:" + grid + ` li[data-user-id="9"]`, "innerHTML:[data-presence-shared-count]"}
	if strings.Join(ops, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ops:\n%s\nwant:\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
	}
	evil := doc.Find(`li[data-user-id="9"]`)
	if evil.Find("img").Length() != 0 || byTestIDIn(evil, "widget-username").Text() != `"]<img src=x onerror=alert(1)>` {
		t.Errorf("username rendered as markup: %s", raw)
	}
	if c := byTestID(doc, "widget-count"); c.AttrOr("data-presence-total", "") != "12" || c.AttrOr("data-presence-count-version", "") != "vab-5" {
		t.Error("no count, or not its version")
	}
}

// TestWidgetDelta_CountTarget: a delta's count goes to the shared lists'
// counts only, never to a friends or room widget's on the same page.
func TestWidgetDelta_CountTarget(t *testing.T) {
	var page bytes.Buffer
	for _, c := range []templ.Component{
		views.WidgetList([]views.WidgetUser{{ID: "1", Username: "ann"}}, views.Count{Total: 5, Version: "vab-3"}, "vab-3"),
		views.FriendsWidgetList([]views.WidgetUser{{ID: "2", Username: "bob"}}),
		views.RoomWidgetList("lobby", []views.WidgetUser{{ID: "3", Username: "cy"}}),
	} {
		page.WriteString(`<section data-presence-widget><div data-presence-list>`)
		if err := c.Render(context.Background(), &page); err != nil {
			t.Fatal(err)
		}
		page.WriteString(`</div></section>`)
	}
	doc, err := goquery.NewDocumentFromReader(&page)
	if err != nil {
		t.Fatal(err)
	}
	delta := mustRender(t, views.WidgetDelta(views.ListDelta{From: "vab-3", To: "vab-4", Count: views.Count{Total: 6, Version: "vab-4"}}))
	op := delta.Find(`[hx-swap-oob^="innerHTML:"]`).AttrOr("hx-swap-oob", "")
	_, sel, _ := strings.Cut(op, ":")
	got := doc.Find(sel)
	if got.Length() != 1 || got.Find("[data-presence-total]").AttrOr("data-presence-total", "") != "5" {
		t.Fatalf("the count target %q selects %d elements, want the shared list's count only", sel, got.Length())
	}
}

func byTestIDIn(s *goquery.Selection, id string) *goquery.Selection {
	return s.Find(`[data-testid="` + id + `"]`)
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		10 * time.Second:     "just now",
		time.Minute:          "1 minute ago",
		5 * time.Minute:      "5 minutes ago",
		3 * time.Hour:        "3 hours ago",
		49 * time.Hour:       "2 days ago",
		400 * 24 * time.Hour: "1 year ago",
	} {
		if got := views.Ago(now, now.Add(-d), " ago"); got != want {
			t.Errorf("Ago(%v) = %q, want %q", d, got, want)
		}
	}
}

// oddIDs are host ids a widget must carry: a UUID, local accounts, and ids
// with the characters CSS, HTML and htmx's selector syntax give a meaning.
var oddIDs = []string{
	"3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b", "local:1", "1",
	`a,b"]<x/> y`, `back\slash`, "ünï cödé", "x/y?z#w", "'single'",
}

// TestWidgetOddIDs: every tile carries its public id as is in
// data-user-id, and each delta target (parsed as htmx does: the swap style
// before the first ':', then split at top-level commas) selects exactly
// that tile in a grid at the delta's From version, whatever the id.
func TestWidgetOddIDs(t *testing.T) {
	var users []views.WidgetUser
	for i, id := range oddIDs {
		users = append(users, views.WidgetUser{ID: id, Username: "u" + strconv.Itoa(i), Host: i != 1})
	}
	list := mustRender(t, views.WidgetList(users, views.Count{Total: len(users), Version: "vab-3"}, "vab-3"))
	tiles := byTestID(list, "widget-user")
	if tiles.Length() != len(oddIDs) {
		t.Fatalf("%d tiles", tiles.Length())
	}
	for i, id := range oddIDs {
		if got := tiles.Eq(i).AttrOr("data-user-id", ""); got != id {
			t.Errorf("tile %d: data-user-id = %q, want %q", i, got, id)
		}
	}

	// Remove each odd id, and insert a new tile before each.
	d := views.ListDelta{From: "vab-3", To: "vab-4", Removed: oddIDs, Count: views.Count{Total: 1, Version: "vab-4"}}
	for _, id := range oddIDs {
		d.Inserted = append(d.Inserted, views.WidgetInsert{User: views.WidgetUser{ID: "new", Username: "n"}, Before: id})
	}
	delta := mustRender(t, views.WidgetDelta(d))
	var targets []string
	delta.Find("[hx-swap-oob]").Each(func(_ int, s *goquery.Selection) {
		op := s.AttrOr("hx-swap-oob", "")
		style, sel, _ := strings.Cut(op, ":")
		if style == "delete" || style == "beforebegin" {
			targets = append(targets, sel)
		}
	})
	if len(targets) != 2*len(oddIDs) {
		t.Fatalf("%d targets: %q", len(targets), targets)
	}
	for i, sel := range targets {
		id := oddIDs[i%len(oddIDs)]
		if strings.ContainsAny(sel, ",<") {
			t.Errorf("target for %q has a ',' or '<', which htmx splits on: %s", id, sel)
			continue
		}
		got := list.Find(sel)
		if got.Length() != 1 || got.AttrOr("data-user-id", "") != id {
			t.Errorf("target %s selects %d tiles, want the one of %q", sel, got.Length(), id)
		}
	}
	// Links: host users by host id, escaped; local accounts by name.
	if href := tiles.Eq(0).Find("a").AttrOr("href", ""); href != "/host/users/3f6c1a2e-9b7d-4e1f-8a2b-5c6d7e8f9a0b" {
		t.Errorf("host link = %q", href)
	}
	if href := tiles.Eq(1).Find("a").AttrOr("href", ""); href != "/users/u1" {
		t.Errorf("local link = %q", href)
	}
	if href := tiles.Eq(6).Find("a").AttrOr("href", ""); href != "/host/users/x%2Fy%3Fz%23w" {
		t.Errorf("host link with '/', '?', '#' = %q", href)
	}
}
