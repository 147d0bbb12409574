package loadtest

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH         = 800, 480
	marginL, marginR     = 70, 20
	marginT, marginB     = 20, 50
	plotTicks            = 5 // about this many ticks per axis
	pointRadius          = 4
	colourP50, colourP99 = "#1f77b4", "#d62728"
	innerW               = plotW - marginL - marginR
	innerH               = plotH - marginT - marginB
)

// WritePlot writes a self-contained HTML page (no scripts, no external
// files): an inline SVG of latency p50 and p99 against throughput, one
// point per step per series, and the steps' table.
func WritePlot(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	title := fmt.Sprintf("radgate bench: %s on %s", r.Model, r.Target)
	fmt.Fprintf(bw, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>%s</title>
<style>
body { font-family: sans-serif; margin: 2em; }
svg text { font-size: 12px; }
table { border-collapse: collapse; margin-top: 1em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
</style>
</head>
<body>
<h1>%s</h1>
<p>batch %d, started %s</p>
`, html.EscapeString(title), html.EscapeString(title), r.Batch, r.Started.Format("2006-01-02 15:04:05 MST"))
	writeSVG(bw, r.Steps)
	writeHTMLTable(bw, r.Steps)
	bw.WriteString("</body>\n</html>\n")
	return bw.Flush()
}

func writeSVG(w *bufio.Writer, steps []Step) {
	var xMax, yMax float64
	for _, s := range steps {
		xMax = max(xMax, s.Throughput)
		yMax = max(yMax, s.Latency.P99, s.Latency.P50)
	}
	xStep, xTop := niceAxis(xMax)
	yStep, yTop := niceAxis(yMax)
	x := func(v float64) float64 { return marginL + v/xTop*innerW }
	y := func(v float64) float64 { return marginT + innerH - v/yTop*innerH }

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="latency against throughput">
`, plotW, plotH, plotW, plotH)
	// Axes, ticks, grid and labels.
	fmt.Fprintf(w, `<g stroke="#000" fill="none"><line x1="%d" y1="%d" x2="%d" y2="%d"/><line x1="%d" y1="%d" x2="%d" y2="%d"/></g>
`, marginL, marginT+innerH, marginL+innerW, marginT+innerH, marginL, marginT, marginL, marginT+innerH)
	for v := 0.0; v <= xTop*(1+1e-9); v += xStep {
		fmt.Fprintf(w, `<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000"/><line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>
`, x(v), marginT+innerH, x(v), marginT+innerH+5, x(v), marginT, x(v), marginT+innerH, x(v), marginT+innerH+18, tickLabel(v))
	}
	for v := 0.0; v <= yTop*(1+1e-9); v += yStep {
		fmt.Fprintf(w, `<line class="tick" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000"/><line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>
`, marginL-5, y(v), marginL, y(v), marginL, y(v), marginL+innerW, y(v), marginL-8, y(v), tickLabel(v))
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">throughput (requests/s)</text>
<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">latency (ms)</text>
`, marginL+innerW/2, plotH-10, marginT+innerH/2)
	// The series.
	for _, series := range []struct {
		name, colour string
		value        func(Latency) float64
	}{
		{"p50", colourP50, func(l Latency) float64 { return l.P50 }},
		{"p99", colourP99, func(l Latency) float64 { return l.P99 }},
	} {
		pts := make([]string, len(steps))
		for i, s := range steps {
			pts[i] = fmt.Sprintf("%.1f,%.1f", x(s.Throughput), y(series.value(s.Latency)))
		}
		fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>
`, strings.Join(pts, " "), series.colour)
		for _, s := range steps {
			fmt.Fprintf(w, `<circle class="pt %s" cx="%.1f" cy="%.1f" r="%d" fill="%s"><title>step %d %s: %.1f req/s, %s %.2f ms</title></circle>
`, series.name, x(s.Throughput), y(series.value(s.Latency)), pointRadius, series.colour,
				s.Index, html.EscapeString(s.Load()), s.Throughput, series.name, series.value(s.Latency))
		}
	}
	// Legend, top left inside the plot.
	fmt.Fprintf(w, `<g transform="translate(%d %d)"><circle cx="0" cy="0" r="%d" fill="%s"/><text x="10" y="4">p50</text><circle cx="0" cy="18" r="%d" fill="%s"/><text x="10" y="22">p99</text></g>
</svg>
`, marginL+20, marginT+15, pointRadius, colourP50, pointRadius, colourP99)
}

func writeHTMLTable(w *bufio.Writer, steps []Step) {
	w.WriteString("<table>\n<tr><th>step</th><th>load</th><th>requests</th><th>errors</th><th>req/s</th><th>items/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>\n")
	for _, s := range steps {
		l := s.Latency
		fmt.Fprintf(w, "<tr><td>%d</td><td>%s</td><td>%d</td><td>%d</td><td>%.1f</td><td>%.1f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
			s.Index, html.EscapeString(s.Load()), s.Requests, s.Errors, s.Throughput, s.ItemsPerS, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	w.WriteString("</table>\n")
}

// niceAxis picks a 1, 2 or 5 × 10^k tick step giving about plotTicks
// ticks from 0 to at least top, and the axis end (a multiple of it).
func niceAxis(top float64) (step, end float64) {
	if !(top > 0) || math.IsInf(top, 0) {
		return 1, plotTicks
	}
	raw := top / plotTicks
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return step, math.Ceil(top/step-1e-9) * step
}

func tickLabel(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
