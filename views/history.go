package views

import (
	"fmt"
	"time"
)

// HistorySpan is one online session as the timeline takes it: End zero
// while it is still open.
type HistorySpan struct {
	Start, End time.Time
	Device     string
}

// HistoryTimeline is a user's last days online, drawn on their profile as
// one bar per day: the day is 1440 units wide (a minute each, scaled on
// days of 23 or 25 hours) and each session a stretch of it.
type HistoryTimeline struct {
	Days []HistoryDay // today first
	Zone string       // the zone the days are cut in ("UTC", "Europe/Paris")
}

// HistoryDay is one day of a HistoryTimeline.
type HistoryDay struct {
	Label string // "Today", "Yesterday", "Mon 2 Mar"
	Date  string // 2026-03-02
	Total string // time online in words ("2 h 05 min"), "" when none
	Bars  []HistoryBar
}

// HistoryBar is one session's stretch of a day.
type HistoryBar struct {
	X, W   int    // start and width in 1440ths of the day
	Title  string // "14:02–15:30, mobile"
	Device string
}

// dayUnits is the width of a day on the timeline.
const dayUnits = 1440

// NewHistoryTimeline cuts spans into the last days days up to now
// (today included), in loc. Open spans run to now.
func NewHistoryTimeline(spans []HistorySpan, now time.Time, loc *time.Location, days int) HistoryTimeline {
	now = now.In(loc)
	h := HistoryTimeline{Zone: loc.String()}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	for i := range days {
		start := today.AddDate(0, 0, -i)
		end := start.AddDate(0, 0, 1)
		length := end.Sub(start)
		d := HistoryDay{Date: start.Format("2006-01-02")}
		switch i {
		case 0:
			d.Label = "Today"
		case 1:
			d.Label = "Yesterday"
		default:
			d.Label = start.Format("Mon 2 Jan")
		}
		var total time.Duration
		for _, s := range spans {
			sEnd := s.End
			if sEnd.IsZero() || sEnd.After(now) {
				sEnd = now
			}
			from, to := maxTime(s.Start, start), minTime(sEnd, end)
			if !to.After(from) {
				continue
			}
			total += to.Sub(from)
			x := int(int64(from.Sub(start)) * dayUnits / int64(length))
			w := int(int64(to.Sub(from)) * dayUnits / int64(length))
			d.Bars = append(d.Bars, HistoryBar{
				X: x, W: max(w, 2), Device: s.Device,
				Title: from.In(loc).Format("15:04") + "–" + to.In(loc).Format("15:04") + ", " + s.Device,
			})
		}
		d.Total = durationText(total)
		h.Days = append(h.Days, d)
	}
	return h
}

// durationText is a time online in words: "2 h 05 min", "45 min",
// "< 1 min"; "" for none.
func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Minute:
		return "< 1 min"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return fmt.Sprintf("%d h %02d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
