package handlers_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencehq/presence/handlers"
)

// testPNG is a w×h picture of one colour.
func testPNG(tb testing.TB, w, h int, c color.Color) []byte {
	tb.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		r, g, b, a := c.RGBA()
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = byte(r>>8), byte(g>>8), byte(b>>8), byte(a>>8)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// upload posts data as the "avatar" file of the settings form, as a
// same-origin browser form would, and returns status, Location and body.
func upload(tb testing.TB, client *http.Client, ts *testServer, data []byte, header http.Header) (int, string, string) {
	tb.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("avatar", "me.png")
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/settings/avatar", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), out.String()
}

// avatarOf returns the profile_image_url the API shows for name.
func avatarOf(tb testing.TB, ts *testServer, tok, name string) string {
	tb.Helper()
	code, body := do(tb, nil, "GET", ts.URL+"/api/users/online/", "", bearer(tok))
	if code != 200 {
		tb.Fatalf("online: %d %s", code, body)
	}
	var users []struct {
		Username        string  `json:"username"`
		ProfileImageURL *string `json:"profile_image_url"`
	}
	json.Unmarshal([]byte(body), &users)
	for _, u := range users {
		if u.Username == name {
			if u.ProfileImageURL == nil {
				return ""
			}
			return *u.ProfileImageURL
		}
	}
	tb.Fatalf("%s not online: %s", name, body)
	return ""
}

func TestAvatarUploadServeRemove(t *testing.T) {
	dir := t.TempDir()
	ts := MustStartServer(t, handlers.Config{AvatarDir: dir})
	_, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	_, tokC := ts.MustCreateUser(t, "carol")
	ts.MustDial(t, tokA)
	ts.MustDial(t, tokB)
	eventually(t, "both online", func() bool { n, _ := ts.Engine.Counts(); return n == 2 })
	a, b := signedIn(t, ts, "alice"), signedIn(t, ts, "bob")

	red := testPNG(t, 300, 200, color.RGBA{200, 0, 0, 255})
	code, loc, body := upload(t, a, ts, red, nil)
	if code != http.StatusSeeOther || loc != "/settings?done=avatar" {
		t.Fatalf("upload = %d %q %s", code, loc, body)
	}
	first := avatarOf(t, ts, tokB, "alice")
	if !strings.HasPrefix(first, ts.URL+"/avatars/") || !strings.HasSuffix(first, ".png") || len(first) != len(ts.URL+"/avatars/")+64+4 {
		t.Fatalf("API avatar = %q, want %s/avatars/<sha256>.png", first, ts.URL)
	}

	t.Run("Serve", func(t *testing.T) {
		resp, err := http.Get(first)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != "image/png" || h.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(h.Get("Cache-Control"), "immutable") || !strings.Contains(h.Get("Cache-Control"), "max-age=31536000") {
			t.Fatalf("%d %v", resp.StatusCode, h)
		}
		m, err := png.Decode(resp.Body)
		if err != nil || m.Bounds().Dx() != 128 || m.Bounds().Dy() != 128 {
			t.Fatalf("served image: %v %v", err, m)
		}
		req, _ := http.NewRequest("GET", first, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		again, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if again.StatusCode != http.StatusNotModified {
			t.Fatalf("revalidation = %d, want 304", again.StatusCode)
		}
		for _, bad := range []string{"/avatars/x.png", "/avatars/..%2fpresence.db", "/avatars/" + strings.Repeat("0", 64) + ".png"} {
			if code, _ := do(t, nil, "GET", ts.URL+bad, "", nil); code != 404 {
				t.Fatalf("%s = %d, want 404", bad, code)
			}
		}
	})

	t.Run("ProfileAndSettingsShowIt", func(t *testing.T) {
		path := strings.TrimPrefix(first, ts.URL)
		for _, page := range []string{"/users/alice", "/settings"} {
			_, body := do(t, a, "GET", ts.URL+page, "", nil)
			if !strings.Contains(body, `src="`+path+`"`) {
				t.Fatalf("%s does not show the avatar %s", page, path)
			}
		}
	})

	t.Run("ReplaceDeletesTheOldFile", func(t *testing.T) {
		blue := testPNG(t, 64, 64, color.RGBA{0, 0, 200, 255})
		if code, _, body := upload(t, a, ts, blue, nil); code != http.StatusSeeOther {
			t.Fatalf("%d %s", code, body)
		}
		second := avatarOf(t, ts, tokB, "alice")
		if second == first {
			t.Fatal("a new picture kept the old URL")
		}
		if code, _ := do(t, nil, "GET", first, "", nil); code != 404 {
			t.Fatalf("old avatar still served: %d", code)
		}
		// Bob picks the same picture: one file, shared; alice removing
		// hers keeps it for bob.
		if code, _, _ := upload(t, b, ts, blue, nil); code != http.StatusSeeOther {
			t.Fatal("bob's upload")
		}
		if avatarOf(t, ts, tokA, "bob") != second {
			t.Fatal("same picture, different URL")
		}
		if code, loc := doForm(t, a, ts, "/settings/avatar/remove", ""); code != http.StatusSeeOther || loc != "/settings?done=avatar-removed" {
			t.Fatalf("remove = %d %q", code, loc)
		}
		if got := avatarOf(t, ts, tokB, "alice"); got != "" {
			t.Fatalf("alice's avatar after removing it: %q", got)
		}
		if code, _ := do(t, nil, "GET", second, "", nil); code != 200 {
			t.Fatalf("bob's avatar gone with alice's: %d", code)
		}
		doForm(t, b, ts, "/settings/avatar/remove", "")
		if code, _ := do(t, nil, "GET", second, "", nil); code != 404 {
			t.Fatalf("unreferenced avatar still served: %d", code)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
			t.Fatalf("files left behind: %v", files)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		var tall bytes.Buffer
		png.Encode(&tall, image.NewGray(image.Rect(0, 0, 1, 60000)))
		json := http.Header{"Accept": {"application/json"}}
		for _, tc := range []struct {
			name string
			data []byte
			want int
		}{
			{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), http.StatusUnsupportedMediaType},
			{"1x60000", tall.Bytes(), http.StatusBadRequest},
			{"over 2 MiB", append(testPNG(t, 8, 8, color.White), make([]byte, 2<<20)...), http.StatusRequestEntityTooLarge},
			{"empty", nil, http.StatusBadRequest},
		} {
			code, _, body := upload(t, a, ts, tc.data, json)
			if code != tc.want || !strings.Contains(body, `"detail"`) {
				t.Errorf("%s: %d %s, want %d with a detail", tc.name, code, body, tc.want)
			}
		}
		// A browser gets the settings page back with the reason.
		code, _, body := upload(t, a, ts, []byte("<svg/>"), nil)
		if code != http.StatusUnsupportedMediaType || mustDoc(t, body).Find(`[data-testid="settings-error"]`).Length() != 1 {
			t.Fatalf("browser refusal: %d", code)
		}
		// Cross-site form posts are refused before anything is read.
		code, _, _ = upload(t, a, ts, red, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}})
		if code != http.StatusForbidden {
			t.Fatalf("cross-site upload = %d, want 403", code)
		}
		// Signed out: to the login page.
		if code, loc, _ := upload(t, browser(t), ts, red, nil); code != http.StatusSeeOther || loc != "/login" {
			t.Fatalf("signed out = %d %q", code, loc)
		}
		if got := avatarOf(t, ts, tokC, "alice"); got != "" {
			t.Fatalf("a refused upload changed the avatar: %q", got)
		}
	})
}

// An avatar change reaches open widgets as a delta: the tile, with its
// image, replaces the initial.
func TestAvatarChangePushesDelta(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{AvatarDir: t.TempDir()})
	alice, tokA := ts.MustCreateUser(t, "alice")
	_, tokB := ts.MustCreateUser(t, "bob")
	s := ts.MustStream(t, tokB)
	ts.MustDial(t, tokA)
	ev := nextNamed(t, s, "presence", "presence-delta")
	if strings.Contains(ev.data, "<img") {
		t.Fatalf("alice has no avatar yet: %s", ev.data)
	}
	if code, _, body := upload(t, signedIn(t, ts, "alice"), ts, testPNG(t, 40, 40, color.RGBA{0, 150, 0, 255}), nil); code != http.StatusSeeOther {
		t.Fatalf("%d %s", code, body)
	}
	ev = nextNamed(t, s, "presence", "presence-delta")
	doc := mustDoc(t, ev.data)
	img := doc.Find(`li[data-user-id="` + itoa(alice.ID) + `"] img.pw-avatar`)
	src, _ := img.Attr("src")
	if !strings.HasPrefix(src, "/avatars/") {
		t.Fatalf("no avatar in the pushed tile (%s): %s", ev.name, ev.data)
	}
}

func TestAvatarUploadsOff(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	ts.MustCreateUser(t, "alice")
	a := signedIn(t, ts, "alice")
	if code, _, _ := upload(t, a, ts, testPNG(t, 8, 8, color.White), http.Header{"Accept": {"application/json"}}); code != 404 {
		t.Fatalf("upload with no avatar dir = %d, want 404", code)
	}
	_, body := do(t, a, "GET", ts.URL+"/settings", "", nil)
	if !strings.Contains(body, "does not keep uploaded avatars") {
		t.Fatal("settings page does not say uploads are off")
	}
}

func TestLocalTime(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{})
	alice, tokA := ts.MustCreateUser(t, "alice")
	ts.MustCreateUser(t, "bob")
	a, b := signedIn(t, ts, "alice"), signedIn(t, ts, "bob")
	localTime := func(client *http.Client) string {
		t.Helper()
		code, body := do(t, client, "GET", ts.URL+"/users/alice", "", nil)
		if code != 200 {
			t.Fatalf("profile: %d", code)
		}
		return strings.Join(strings.Fields(mustDoc(t, body).Find(`[data-testid="profile-local-time"]`).Text()), " ")
	}
	if got := localTime(b); got != "" {
		t.Fatalf("before any report: %q", got)
	}

	// Bad zones are ignored: the socket works, no error is sent.
	for _, bad := range []string{"Mars/Olympus_Mons", "Local", "../../../etc/passwd", strings.Repeat("A", 100), "Europe/Paris%00"} {
		c := ts.MustDialQuery(t, "?events=0&token="+url.QueryEscape(tokA)+"&tz="+url.QueryEscape(bad))
		c.send(`{"type":"ping"}`)
		if m := c.next(); m["type"] != "pong" {
			t.Fatalf("tz=%q: after the ack the socket got %v, want only the pong", bad, m)
		}
		c.conn.Close()
	}
	if got := localTime(b); got != "" {
		t.Fatalf("after bad zones: %q", got)
	}

	ts.MustDialQuery(t, "?token="+url.QueryEscape(tokA)+"&tz=Asia%2FTokyo")
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	want := "local time " + ts.Clock.Now().In(tokyo).Format("15:04")
	if got := localTime(b); got != want {
		t.Fatalf("bob sees %q, want %q", got, want)
	}
	// Alice's settings say which zone her browser reported, written or not.
	if _, body := do(t, a, "GET", ts.URL+"/settings", "", nil); !strings.Contains(mustDoc(t, body).Find(`[data-testid="settings-time-zone"]`).Text(), "Asia/Tokyo") {
		t.Fatal("settings page does not show the reported zone before it is written")
	}
	// Written in a batch, on the server's clock.
	eventually(t, "the zone written", func() bool {
		ts.Clock.Advance(100 * time.Millisecond)
		lt, err := ts.DB.LocalTimeOf(ctx, alice.ID)
		return err == nil && lt.Zone == "Asia/Tokyo"
	})

	// Hidden: bob sees nothing, alice sees hers, marked.
	if code, loc := doForm(t, a, ts, "/settings/local-time", ""); code != http.StatusSeeOther || loc != "/settings?done=local-time" {
		t.Fatalf("hide = %d %q", code, loc)
	}
	if got := localTime(b); got != "" {
		t.Fatalf("hidden, bob still sees %q", got)
	}
	if got := localTime(a); got != want+" (only you see this)" {
		t.Fatalf("alice sees %q on her own profile", got)
	}
	_, body := do(t, a, "GET", ts.URL+"/settings", "", nil)
	doc := mustDoc(t, body)
	if _, checked := doc.Find(`[data-testid="show-local-time"]`).Attr("checked"); checked || !strings.Contains(doc.Find(`[data-testid="settings-time-zone"]`).Text(), "Asia/Tokyo") {
		t.Fatal("settings page does not show the setting off and the zone")
	}
	doForm(t, a, ts, "/settings/local-time", "show_local_time=1")
	if got := localTime(b); got != want {
		t.Fatalf("shown again, bob sees %q", got)
	}
}

// doForm posts a same-origin form and returns status and Location.
func doForm(tb testing.TB, client *http.Client, ts *testServer, path, form string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.URL)
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// Host users keep the avatar of their JWT's picture claim: the settings
// page says so and uploads and removals are refused (403), and the API
// shows the host's URL as it is.
func TestAvatar_HostUserKeepsPicture(t *testing.T) {
	ts := hostServer(t, handlers.Config{AvatarDir: t.TempDir()})
	now := ts.Clock.Now()
	tok := simpleJWT(t, now, 42, jwt.MapClaims{"username": "ada", "picture": "https://img.example.com/a.png"})
	ts.dialAck(t, tok)
	h := bearer(tok)
	h.Set("Accept", "application/json")
	if code, _, body := upload(t, http.DefaultClient, ts, testPNG(t, 8, 8, color.White), h); code != http.StatusForbidden || !strings.Contains(body, "comes from the site") {
		t.Fatalf("host user's upload = %d %s, want 403", code, body)
	}
	if code, body := do(t, nil, "POST", ts.URL+"/settings/avatar/remove", "", h); code != http.StatusForbidden {
		t.Fatalf("host user's remove = %d %s, want 403", code, body)
	}
	if _, body := do(t, nil, "GET", ts.URL+"/settings", "", bearer(tok)); !strings.Contains(body, "comes from the site you signed in with") || !strings.Contains(body, `src="https://img.example.com/a.png"`) {
		t.Fatal("settings page does not show the host's avatar and say where it comes from")
	}
	if got := avatarOf(t, ts, simpleJWT(t, now, 7, nil), "ada"); got != "https://img.example.com/a.png" {
		t.Fatalf("API avatar = %q, want the host's", got)
	}
}

// Uploads cost a decode each: a user gets a burst of 10, then one a
// minute (on the server's clock), and 429 with Retry-After past it.
func TestAvatarUploadRateLimit(t *testing.T) {
	ts := MustStartServer(t, handlers.Config{AvatarDir: t.TempDir()})
	ts.MustCreateUser(t, "alice")
	ts.MustCreateUser(t, "bob")
	a := signedIn(t, ts, "alice")
	img := testPNG(t, 8, 8, color.White)
	for i := range 10 {
		if code, _, body := upload(t, a, ts, img, nil); code != http.StatusSeeOther {
			t.Fatalf("upload %d = %d %s", i+1, code, body)
		}
	}
	req := func(client *http.Client) (int, string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("avatar", "me.png")
		fw.Write(img)
		mw.Close()
		r, _ := http.NewRequest("POST", ts.URL+"/settings/avatar", &body)
		r.Header.Set("Content-Type", mw.FormDataContentType())
		r.Header.Set("Accept", "application/json")
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, ra := req(a); code != http.StatusTooManyRequests || ra == "" {
		t.Fatalf("11th upload = %d (Retry-After %q), want 429 with Retry-After", code, ra)
	}
	if code, _ := req(signedIn(t, ts, "bob")); code != http.StatusSeeOther {
		t.Fatalf("bob is limited by alice's uploads: %d", code)
	}
	ts.Clock.Advance(time.Minute)
	if code, _ := req(a); code != http.StatusSeeOther {
		t.Fatalf("after a minute = %d, want 303", code)
	}
}
