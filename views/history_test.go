package views

import (
	"testing"
	"time"
)

func TestNewHistoryTimeline(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// 2026-03-29 in Paris has 23 hours (clocks go forward at 02:00).
	now := time.Date(2026, 3, 30, 6, 0, 0, 0, paris)
	spans := []HistorySpan{
		// Across midnight: 23:00 on the 28th to 01:00 on the 29th.
		{Start: time.Date(2026, 3, 28, 23, 0, 0, 0, paris), End: time.Date(2026, 3, 29, 1, 0, 0, 0, paris), Device: "mobile"},
		// Open: from 05:30 today, drawn up to now (06:00).
		{Start: time.Date(2026, 3, 30, 5, 30, 0, 0, paris), Device: "desktop"},
	}
	h := NewHistoryTimeline(spans, now, paris, 3)
	if len(h.Days) != 3 || h.Zone != "Europe/Paris" {
		t.Fatalf("%d days in %s", len(h.Days), h.Zone)
	}
	today, dst, before := h.Days[0], h.Days[1], h.Days[2]
	if today.Label != "Today" || today.Total != "30 min" || len(today.Bars) != 1 || today.Bars[0].X != 330 || today.Bars[0].W != 30 {
		t.Errorf("today = %+v, want one 30-minute bar at 330", today)
	}
	// One hour of a 23-hour day: 1440/23 wide, from 0.
	if dst.Label != "Yesterday" || dst.Total != "1 h 00 min" || len(dst.Bars) != 1 || dst.Bars[0].X != 0 || dst.Bars[0].W != 1440/23 {
		t.Errorf("the 23-hour day = %+v", dst)
	}
	if before.Label != "Sat 28 Mar" || before.Total != "1 h 00 min" || len(before.Bars) != 1 || before.Bars[0].X != 1380 || before.Bars[0].Title != "23:00–00:00, mobile" {
		t.Errorf("the day before = %+v", before)
	}
	if got := durationText(20 * time.Second); got != "< 1 min" {
		t.Errorf("20 s = %q", got)
	}
}
