package realtime

import (
	"strings"
	"testing"
)

func TestDevices_ParseAndIntern(t *testing.T) {
	var ds devices
	const chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	a, b := ds.of(chrome), ds.of(chrome)
	if a != b {
		t.Fatal("the same User-Agent is not shared")
	}
	if d := a.device(); d.Browser != "Chrome" || d.OS != "Linux" || d.Label() != "Chrome on Linux" {
		t.Fatalf("chrome = %+v %q", d, d.Label())
	}
	for ua, want := range map[string]string{
		"":                   "Unknown device",
		"Go-http-client/1.1": "Go-http-client",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1": "Safari on iOS",
	} {
		d := ds.of(ua).device()
		if got := d.Label(); got != want {
			t.Errorf("%q: %q, want %q", ua, got, want)
		}
	}
	// Beyond the cache's bound, agents are still parsed, not kept.
	for i := range deviceCacheMax + 10 {
		ds.of("client-" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + "/" + string(rune('0'+i%10)) + strings.Repeat("y", i))
	}
	if len(ds.m) > deviceCacheMax {
		t.Fatalf("cache holds %d agents, bound %d", len(ds.m), deviceCacheMax)
	}
	if len(ds.of(strings.Repeat("z", 5000)).ua) > maxUALen {
		t.Fatal("a huge User-Agent is kept whole")
	}
}

func TestCleanTabAndConnID(t *testing.T) {
	for tab, ok := range map[string]bool{"tab-1": true, "a_B9": true, "": false, "x y": false, "<script>": false, strings.Repeat("a", 41): false} {
		if (CleanTab(tab) != "") != ok {
			t.Errorf("CleanTab(%q) = %q", tab, CleanTab(tab))
		}
	}
	a, b := newConnID(), newConnID()
	if a == b || len(a.String()) != 22 {
		t.Fatalf("ids %s %s", a, b)
	}
	if got, ok := parseConnID(a.String()); !ok || got != a {
		t.Fatal("id does not round-trip")
	}
	for _, bad := range []string{"", "x", a.String() + "A", "!!!!!!!!!!!!!!!!!!!!!!"} {
		if _, ok := parseConnID(bad); ok {
			t.Errorf("parseConnID(%q) accepted", bad)
		}
	}
}
