package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// portrait draws a 256 px placeholder portrait: a head and shoulders in
// a light tone on a two-colour gradient, so screenshots show real images.
func portrait(top, bottom, skin color.RGBA) []byte {
	const n = 256
	m := image.NewRGBA(image.Rect(0, 0, n, n))
	mix := func(a, b uint8, f float64) uint8 { return uint8(float64(a)*(1-f) + float64(b)*f) }
	for y := range n {
		f := float64(y) / n
		bg := color.RGBA{mix(top.R, bottom.R, f), mix(top.G, bottom.G, f), mix(top.B, bottom.B, f), 255}
		for x := range n {
			c := bg
			dx, dy := float64(x-n/2), float64(y-n*2/5)
			sx, sy := float64(x-n/2)/(n*0.38), float64(y-n)/(n*0.32)
			if dx*dx+dy*dy < (n*0.19)*(n*0.19) || sx*sx+sy*sy < 1 {
				c = skin
			}
			m.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, m)
	return b.Bytes()
}

// mustUploadAvatar signs name in through the login form (password1) and
// uploads data as their avatar, as the settings page's form does.
func mustUploadAvatar(tb testing.TB, base, name string, data []byte) {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(base+"/login", url.Values{"username": {name}, "password": {"password1"}})
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("avatar", name+".png")
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/settings/avatar", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err = client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("upload %s's avatar: %s", name, resp.Status)
	}
}

// tileAvatar is JS: the loaded avatar image of name's widget tile, as
// "<natural width>|<border colour>|<has dot>", or "" while it shows the
// initial.
func tileAvatar(name string) string {
	return fmt.Sprintf(`(() => {
		const a = document.querySelector('[data-testid=online-users-widget] a[data-username=%q]');
		const img = a && a.querySelector('img.pw-avatar');
		if (!img || !img.complete || !img.naturalWidth) return "";
		return img.naturalWidth + "|" + getComputedStyle(img).borderTopColor + "|" + !!a.querySelector('[data-testid=online-dot]');
	})()`, name)
}

// TestBrowser_Avatar: bob uploads an avatar on the settings page; alice's
// open widget swaps his initial for the picture — served, 128 px, gold
// border, green dot — without a reload, and back when he removes it.
func TestBrowser_Avatar(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "alice")
	mustToken(t, base, "bob")
	alice, bob := aliceSeesBob(t, browser, base)
	waitFor(t, alice, "bob's tile shows his initial", `!!document.querySelector('[data-testid=online-users-widget] a[data-username=bob] .pw-initial')`, 2*time.Second)

	file := filepath.Join(t.TempDir(), "bob.png")
	if err := os.WriteFile(file, portrait(color.RGBA{14, 165, 233, 255}, color.RGBA{30, 58, 138, 255}, color.RGBA{254, 215, 170, 255}), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file over 2 MiB is refused in the page, before it is sent.
	big := filepath.Join(t.TempDir(), "big.png")
	if err := os.WriteFile(big, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, bob,
		chromedp.Navigate(base+"/settings"),
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=avatar-file]`), []string{big}),
		chromedp.Click(chromedp.CSS(`[data-testid=avatar-upload]`)),
	)
	msg, _ := chromedp.Run(bob, chromedp.Evaluate[string](`document.querySelector('[data-testid=avatar-file]').validationMessage`))
	if !strings.Contains(msg, "larger than 2 MiB") {
		t.Fatalf("oversize file: validation message %q", msg)
	}
	must(t, bob,
		chromedp.Navigate(base+"/settings"),
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=avatar-file]`), []string{file}),
		chromedp.Click(chromedp.CSS(`[data-testid=avatar-upload]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=settings-notice]`)),
	)
	want := `128|rgb(253, 224, 71)|true` // yellow-300 border, online dot
	waitFor(t, alice, "bob's avatar appears live in alice's widget", tileAvatar("bob")+` === `+fmt.Sprintf("%q", want), 3*time.Second)
	src, _ := chromedp.Run(alice, chromedp.Evaluate[string](`document.querySelector('a[data-username=bob] img').src`))
	if !strings.HasPrefix(src, base+"/avatars/") {
		t.Fatalf("avatar src %q", src)
	}

	must(t, bob, chromedp.Click(chromedp.CSS(`[data-testid=avatar-remove]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=settings-notice]`)))
	waitFor(t, alice, "bob's initial is back", `!!document.querySelector('[data-testid=online-users-widget] a[data-username=bob] .pw-initial')`, 3*time.Second)
}

// TestBrowser_LocalTime: alice's browser is in Tokyo; the time zone it
// reports on connect puts her local time on her profile for bob.
func TestBrowser_LocalTime(t *testing.T) {
	browser := newBrowser(t)
	base, _ := inProcess(t, browserArgs(dataDir(t)))
	mustToken(t, base, "alice")
	mustToken(t, base, "bob")
	alice, _ := newTab(t, newPerson(t, browser))
	if _, err := chromedp.Call(alice, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	login(t, alice, base, "alice")
	bob, _ := newTab(t, newPerson(t, browser))
	login(t, bob, base, "bob")
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	deadline := time.Now().Add(5 * time.Second)
	for {
		must(t, bob, chromedp.Navigate(base+"/users/alice"))
		got, _ := chromedp.Run(bob, chromedp.Evaluate[string](`(document.querySelector('[data-testid=profile-local-time]') || {textContent: ""}).textContent.trim()`))
		now := time.Now().In(tokyo)
		if got == "local time "+now.Format("15:04") || got == "local time "+now.Add(-time.Minute).Format("15:04") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob sees %q on alice's profile, want local time %s (Tokyo)", got, now.Format("15:04"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
