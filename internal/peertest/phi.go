package peertest

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// phiPattern matches the identities of the fictitious patients the suite's
// data carries: the phantoms (PHANTOM^CXR^7, PH-CXR-7; fixtures'
// PHANTOM-7, Phantom^Seven), the synthetic CT (Phantom^CT, RADGATE-BENCH),
// the gateway tests' PHANTOM^TEST and pydicom's samples
// (CompressedSamples^CT1, 1CT1, 4MR1). A log line holding one is a log line
// that would hold a real patient's name or ID in a hospital.
var phiPattern = regexp.MustCompile(`(?i)phantom\^|\bPH-[A-Z]+-\d+\b|\bphantom-\d+\b|radgate-bench|compressedsamples|\b(1CT1|4MR1)\b`)

// NoPHI fails t for each line of text (a log, named by source) that names
// one of the suite's patients.
func NoPHI(t testing.TB, source, text string) {
	t.Helper()
	var bad []string
	for i, line := range strings.Split(text, "\n") {
		if phiPattern.MatchString(line) {
			bad = append(bad, fmt.Sprintf("%s:%d: %s", source, i+1, clip(line, 400)))
		}
	}
	if len(bad) > 0 {
		t.Errorf("PHI in %d log line(s) (patient names or IDs must never be logged; log hashed UIDs):\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
}

// Logger is a debug-level logger for a service under test whose every line
// is checked with NoPHI when the test ends. Logs returns what it wrote.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &logBuffer{}
	t.Cleanup(func() { NoPHI(t, t.Name()+" log", w.String()) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
