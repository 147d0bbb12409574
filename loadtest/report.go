package loadtest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// csvHeader is WriteCSV's first row: Step's JSON names, latency_ms.p50
// flattened to p50_ms and so on, errors_by_code as "Code=N;Code=N".
var csvHeader = []string{
	"step", "mode", "concurrency", "rate_rps", "batch", "requests", "ok", "errors", "errors_by_code",
	"elapsed_s", "throughput_rps", "items_per_s", "achieved_concurrency", "achieved_rate_rps",
	"p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms", "mean_ms",
}

// WriteCSV writes one row per step under csvHeader.
func WriteCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, s := range r.Steps {
		l := s.Latency
		row := []string{
			strconv.Itoa(s.Index), s.Mode, strconv.Itoa(s.Concurrency), num(s.Rate), strconv.Itoa(s.Batch),
			strconv.Itoa(s.Requests), strconv.Itoa(s.OK), strconv.Itoa(s.Errors), codeList(s.ErrorsByCode, "=", ";"),
			num(s.ElapsedS), num(s.Throughput), num(s.ItemsPerS), num(s.AchievedConcurrency), num(s.AchievedRate),
			num(l.P50), num(l.P90), num(l.P99), num(l.P999), num(l.Max), num(l.Mean),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes r indented: the Report and Step JSON names.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the steps as an aligned text table, then a line per
// step that had errors.
func WriteTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STEP\tLOAD\tREQS\tERRS\tREQ/S\tITEMS/S\tCONC\tP50 ms\tP90 ms\tP99 ms\tP99.9 ms\tMAX ms\tMEAN ms\t")
	for _, s := range r.Steps {
		l := s.Latency
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			s.Index, s.Load(), s.Requests, s.Errors, s.Throughput, s.ItemsPerS, s.AchievedConcurrency,
			l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Steps {
		if s.Errors > 0 {
			if _, err := fmt.Fprintf(w, "step %d %s errors: %s\n", s.Index, s.Load(), codeList(s.ErrorsByCode, " ", ", ")); err != nil {
				return err
			}
		}
	}
	return nil
}

// codeList is counts sorted by code name: "Unavailable=3;Unknown=1".
func codeList(counts map[string]int, kv, sep string) string {
	parts := make([]string, 0, len(counts))
	for _, code := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, code+kv+strconv.Itoa(counts[code]))
	}
	return strings.Join(parts, sep)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
