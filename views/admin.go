package views

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// chartW and chartH are the figures chart's SVG user units.
const (
	chartW = 600
	chartH = 120
)

func lastSample(s []AdminSample) AdminSample {
	if len(s) == 0 {
		return AdminSample{}
	}
	return s[len(s)-1]
}

// chartPoints is an SVG polyline of value over the samples, scaled so
// its largest value fills the chart's height.
func chartPoints(samples []AdminSample, value func(AdminSample) float64) string {
	if len(samples) == 0 {
		return ""
	}
	top := 1.0
	for _, s := range samples {
		top = max(top, value(s))
	}
	var b strings.Builder
	step := float64(chartW)
	if len(samples) > 1 {
		step = float64(chartW) / float64(len(samples)-1)
	}
	for i, s := range samples {
		x := float64(i) * step
		y := float64(chartH) - 4 - value(s)/top*float64(chartH-8)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return b.String()
}

func mib(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func latency(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
