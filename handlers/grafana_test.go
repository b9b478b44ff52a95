package handlers_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/presencehq/presence/handlers"
)

// TestGrafanaDashboard checks docs/grafana/presence.json against what a
// real server serves at /metrics: every metric a panel queries exists.
// Metrics that no panel shows are listed in the log, for the next edit of
// the dashboard.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana/presence.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}

	ts := MustStartServer(t, handlers.Config{})
	code, body := do(t, nil, "GET", ts.URL+"/metrics", "", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			served[strings.Fields(name)[0]] = true
		}
	}
	metricName := regexp.MustCompile(`\b(presence_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)
	shown := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				shown[n] = true
				if !served[n] {
					t.Errorf("panel %q queries %s, which /metrics does not serve", p.Title, n)
				}
			}
		}
	}
	var missing []string
	for n := range served {
		if !shown[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Logf("served but on no panel: %v", missing)
	}
}
