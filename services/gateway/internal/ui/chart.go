package ui

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
)

// dayCount is one UTC day of a provider's activity.
type dayCount struct {
	Start                 time.Time
	Pushes, Syncs, Errors int
}

// series names one bar of a day: the dayCount field it shows and its label.
type series struct{ Key, Label string }

var (
	gmailSeries    = []series{{"pushes", "Pushes received"}, {"syncs", "Syncs"}, {"errors", "Errors"}}
	calendarSeries = []series{{"pushes", "Notifications received"}, {"syncs", "Syncs with changes"}, {"errors", "Errors"}}
)

func (d dayCount) value(key string) int {
	switch key {
	case "pushes":
		return d.Pushes
	case "syncs":
		return d.Syncs
	case "errors":
		return d.Errors
	}
	return 0
}

// runMark is a maintenance run on the chart's time axis.
type runMark struct {
	Time   time.Time
	Failed bool
	Label  string
}

type chartInput struct {
	Now         time.Time
	Title       string
	Series      []series
	Days        []dayCount
	Expiry      time.Time
	ExpiryLabel string
	Runs        []runMark
}

// chartDays returns the last 7 UTC days ending today, filled from the counts given.
func chartDays(now time.Time, given []dayCount) []dayCount {
	today := now.UTC().Truncate(24 * time.Hour)
	out := make([]dayCount, 7)
	for i := range out {
		out[i].Start = today.AddDate(0, 0, i-6)
	}
	for _, g := range given {
		for i := range out {
			if g.Start.UTC().Truncate(24 * time.Hour).Equal(out[i].Start) {
				start := out[i].Start
				out[i] = g
				out[i].Start = start
			}
		}
	}
	return out
}

// renderChart draws the health-at-a-glance chart as inline SVG (no script): the last 7 days as bars
// per series, the watch or channel expiry as a dashed line (the axis extends into the future to reach
// it, up to 8 days ahead), "now", and maintenance runs as dots; a table of the numbers follows.
func renderChart(in chartInput) template.HTML {
	const (
		w, h                     = 640.0, 210.0
		left, right, top, bottom = 40.0, 12.0, 30.0, 40.0
	)
	days := chartDays(in.Now, in.Days)
	start := days[0].Start
	end := days[6].Start.Add(24 * time.Hour)
	if !in.Expiry.IsZero() && in.Expiry.After(end) {
		end = in.Expiry.Add(12 * time.Hour)
		if limit := days[6].Start.Add(9 * 24 * time.Hour); end.After(limit) {
			end = limit
		}
	}
	plotW, plotH := w-left-right, h-top-bottom
	x := func(t time.Time) float64 {
		return left + plotW*float64(t.Sub(start))/float64(end.Sub(start))
	}
	maxV := 1
	for _, d := range days {
		for _, s := range in.Series {
			if v := d.value(s.Key); v > maxV {
				maxV = v
			}
		}
	}
	y := func(v int) float64 { return top + plotH - plotH*float64(v)/float64(maxV) }
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<figure class="chart" id="health-chart"><svg viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">`, w, h)
	fmt.Fprintf(&b, `<title id="chart-title">%s</title>`, esc(in.Title))
	desc := describe(in, days)
	fmt.Fprintf(&b, `<desc id="chart-desc">%s</desc>`, esc(desc))
	// Axes and the max grid line.
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, top+plotH, w-right, top+plotH)
	fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, top, w-right, top)
	fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%d</text>`, left-6, top+4, maxV)
	fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">0</text>`, left-6, top+plotH+4)
	for _, d := range days {
		x0, x1 := x(d.Start), x(d.Start.Add(24*time.Hour))
		dw := x1 - x0
		group := dw * 0.72
		bw := group / float64(len(in.Series))
		gx := x0 + (dw-group)/2
		for i, s := range in.Series {
			v := d.value(s.Key)
			by := y(v)
			bh := top + plotH - by
			if v > 0 && bh < 1.5 {
				bh, by = 1.5, top+plotH-1.5
			}
			fmt.Fprintf(&b, `<rect class="bar bar-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %d</title></rect>`,
				s.Key, gx+float64(i)*bw, by, bw*0.9, bh, esc(d.Start.Format("Mon 2 Jan")), esc(s.Label), v)
		}
		if dw >= 50 {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x0+dw/2, top+plotH+16, esc(d.Start.Format("Mon 2")))
		} else {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text><text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
				x0+dw/2, top+plotH+14, esc(d.Start.Format("Mon")), x0+dw/2, top+plotH+26, d.Start.Format("2"))
		}
	}
	if nx := x(in.Now); nx >= left && nx <= w-right {
		fmt.Fprintf(&b, `<line class="now" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><text class="tick" x="%.1f" y="%.1f" text-anchor="middle">now</text>`,
			nx, top-4, nx, top+plotH, nx, top-6)
	}
	if !in.Expiry.IsZero() {
		ex := x(in.Expiry)
		label := in.ExpiryLabel + " " + in.Expiry.UTC().Format("Mon 2 Jan 15:04")
		switch {
		case ex < left:
			label = in.ExpiryLabel + " (expired " + in.Expiry.UTC().Format("Mon 2 Jan 15:04") + ")"
			ex = left
		case ex > w-right:
			ex = w - right
			label += " →"
		}
		anchor := "end"
		if ex < left+plotW/2 {
			anchor = "start"
		}
		fmt.Fprintf(&b, `<line class="expiry" id="chart-expiry" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><text class="expiry-label" x="%.1f" y="%.1f" text-anchor="%s">%s</text>`,
			ex, top-12, ex, top+plotH, ex, top-16, anchor, esc(label))
	}
	for _, m := range in.Runs {
		if m.Time.Before(start) || m.Time.After(end) {
			continue
		}
		cls := "run-ok"
		if m.Failed {
			cls = "run-failed"
		}
		fmt.Fprintf(&b, `<circle class="run %s" cx="%.1f" cy="%.1f" r="4"><title>%s</title></circle>`, cls, x(m.Time), top+plotH-6, esc(m.Label))
	}
	b.WriteString(`</svg><figcaption class="legend">`)
	for _, s := range in.Series {
		fmt.Fprintf(&b, `<span class="sw sw-%s" aria-hidden="true"></span>%s `, s.Key, esc(s.Label))
	}
	if !in.Expiry.IsZero() {
		fmt.Fprintf(&b, `<span class="sw sw-expiry" aria-hidden="true"></span>%s `, esc(upper1(in.ExpiryLabel)))
	}
	b.WriteString(`<span class="sw sw-run" aria-hidden="true"></span>Maintenance run (UTC days)</figcaption>`)
	b.WriteString(`<details><summary>Show the numbers</summary><table class="numbers"><thead><tr><th scope="col">Day (UTC)</th>`)
	for _, s := range in.Series {
		fmt.Fprintf(&b, `<th scope="col">%s</th>`, esc(s.Label))
	}
	b.WriteString(`</tr></thead><tbody>`)
	for _, d := range days {
		fmt.Fprintf(&b, `<tr><th scope="row">%s</th>`, esc(d.Start.Format("Mon 2 Jan")))
		for _, s := range in.Series {
			fmt.Fprintf(&b, `<td>%d</td>`, d.value(s.Key))
		}
		b.WriteString(`</tr>`)
	}
	b.WriteString(`</tbody></table></details></figure>`)
	return template.HTML(b.String()) // every interpolated text is escaped above
}

func describe(in chartInput, days []dayCount) string {
	totals := make([]string, 0, len(in.Series))
	for _, s := range in.Series {
		n := 0
		for _, d := range days {
			n += d.value(s.Key)
		}
		totals = append(totals, fmt.Sprintf("%s: %d", strings.ToLower(s.Label), n))
	}
	out := "Last 7 days — " + strings.Join(totals, ", ") + "."
	if !in.Expiry.IsZero() {
		out += " " + upper1(in.ExpiryLabel) + " " + in.Expiry.UTC().Format("Mon 2 Jan 15:04 UTC") + "."
	}
	return out
}
