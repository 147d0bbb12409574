package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radgate/radgate/internal/peertest"
)

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func sample(i int) Message {
	return InstancesReceived(Transfer{
		Header:  Header{Source: "test", Time: when.Add(time.Duration(i) * time.Second)},
		From:    Node{ID: "MOD", Addr: "192.0.2.1:104"},
		To:      Node{ID: "RADGATE"},
		Patient: Patient{ID: "PID", Name: "Doe^J"},
		Studies: []Study{{UID: "1.2.3." + strings.Repeat("9", i%7+1), SOPClasses: map[string]int{"1.2.840.10008.5.1.4.1.1.2": i}}},
	})
}

func open(t *testing.T, dir string, opt Options) *Trail {
	t.Helper()
	tr, err := Open(dir, opt, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return tr
}

func recordN(t *testing.T, tr *Trail, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := tr.Record(context.Background(), sample(i)); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
}

// writeTrail writes n records over several small files and closes the trail.
func writeTrail(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	c := peertest.NewClock(when)
	tr := open(t, dir, Options{MaxFileBytes: 6000, Now: c.Now})
	recordN(t, tr, 0, n)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func files(t *testing.T, dir string) []trailFile {
	t.Helper()
	fs, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// editLines rewrites one trail file through f over its lines.
func editLines(t *testing.T, path string, f func([][]byte) [][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if err := os.WriteFile(path, bytes.Join(f(lines), nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyIntact(t *testing.T) {
	dir := writeTrail(t, 25)
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := files(t, dir)
	if len(fs) < 3 {
		t.Fatalf("want the trail spread over several files, got %d", len(fs))
	}
	if rep.Records != 25 || rep.FirstSeq != 1 || rep.LastSeq != 25 || len(rep.Files) != len(fs) {
		t.Errorf("report %+v", rep)
	}
	seq, prev, err := firstRecord(dir, fs[0])
	if err != nil || seq != 1 || prev != zeroHash {
		t.Fatalf("first record seq %d prev %s: %v", seq, prev, err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	second := func(dir string) string { return filepath.Join(dir, files(t, dir)[1].Name) }
	last := func(dir string) string { fs := files(t, dir); return filepath.Join(dir, fs[len(fs)-1].Name) }
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   error
		inFile func(dir string) string // the file the break must be reported in ("" = any)
	}{
		{"edited byte in a message", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte { l[1] = bytes.Replace(l[1], []byte("Doe^J"), []byte("Doe^K"), 1); return l })
		}, ErrTampered, second},
		{"edited time", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte {
				l[1] = bytes.Replace(l[1], []byte(`"time":"2`), []byte(`"time":"3`), 1)
				return l
			})
		}, ErrTampered, second},
		{"edited spacing only", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte {
				l[0] = bytes.Replace(l[0], []byte(`,"prev"`), []byte(`, "prev"`), 1)
				return l
			})
		}, ErrMalformed, second},
		{"deleted record", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte { return append(l[:1], l[2:]...) })
		}, ErrTampered, second},
		{"inserted record", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte { return append(l[:2], append([][]byte{l[1]}, l[2:]...)...) })
		}, ErrTampered, second},
		{"reordered records", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte { l[0], l[1] = l[1], l[0]; return l })
		}, ErrTampered, second},
		{"last record removed", func(t *testing.T, dir string) {
			editLines(t, last(dir), func(l [][]byte) [][]byte { return l[:len(l)-1] })
		}, ErrTruncated, last},
		{"file cut mid-line", func(t *testing.T, dir string) {
			p := last(dir)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-40)
		}, ErrTruncated, last},
		{"middle file deleted", func(t *testing.T, dir string) { os.Remove(second(dir)) }, ErrTampered, nil},
		{"first file deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, files(t, dir)[0].Name)) }, ErrTampered, nil},
		{"last file deleted", func(t *testing.T, dir string) { os.Remove(last(dir)) }, ErrTruncated, nil},
		{"HEAD rewritten", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, headFile))
			os.WriteFile(filepath.Join(dir, headFile), bytes.Replace(b, []byte(`"seq":25`), []byte(`"seq":24`), 1), 0o600)
		}, ErrTampered, nil},
		{"record with a recomputed hash under another key", func(t *testing.T, dir string) {
			editLines(t, second(dir), func(l [][]byte) [][]byte {
				r, err := parseRecord(l[0])
				if err != nil {
					t.Fatal(err)
				}
				r.Msg = strings.Replace(r.Msg, "Doe^J", "Roe^R", 1)
				r.Hash = sum(make([]byte, keySize), r.Seq, r.Time, r.Prev, r.Msg)
				l[0] = r.encode()
				return l
			})
		}, ErrTampered, second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTrail(t, 25)
			c.tamper(t, dir)
			_, err := Verify(dir)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			var brk *BreakError
			if !errors.As(err, &brk) {
				t.Fatalf("Verify error %T is not a *BreakError", err)
			}
			if c.inFile != nil && filepath.Join(dir, brk.File) != c.inFile(dir) {
				t.Errorf("break reported in %s, want %s", brk.File, filepath.Base(c.inFile(dir)))
			}
		})
	}
}

func TestRestartContinuesChain(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	tr := open(t, dir, Options{Registerer: reg})
	recordN(t, tr, 0, 7)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(tr.records); got != 7 {
		t.Errorf("radgate_audit_records_total = %v, want 7", got)
	}
	tr = open(t, dir, Options{})
	recordN(t, tr, 7, 5)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 12 || rep.LastSeq != 12 {
		t.Errorf("report %+v, want 12 records in one chain", rep)
	}
	if err := tr.Record(context.Background(), sample(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
}

func TestFlushMakesDurable(t *testing.T) {
	dir := t.TempDir()
	tr := open(t, dir, Options{CommitInterval: time.Hour}) // only Flush commits
	defer tr.Close()
	recordN(t, tr, 0, 3)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, ok, err := readMark(dir, headFile, tr.key)
	if err != nil || !ok || h.Seq != 3 {
		t.Fatalf("HEAD after Flush = %+v %v %v, want seq 3", h, ok, err)
	}
	if _, err := Verify(dir); err != nil {
		t.Errorf("Verify on a running trail: %v", err)
	}
}

func TestCrashMidWrite(t *testing.T) {
	dir := writeTrail(t, 10)
	fs := files(t, dir)
	lastPath := filepath.Join(dir, fs[len(fs)-1].Name)
	// A crash mid-write before fsync: half a record line, no newline.
	partial := record{Seq: 11, Time: "2026-12-02T17:00:00Z", Prev: zeroHash, Msg: "<AuditMessage>", Hash: zeroHash}.encode()
	f, err := os.OpenFile(lastPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(partial[:len(partial)/2])
	f.Close()

	// Stopped trail: Verify reports the cut.
	if _, err := Verify(dir); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Verify on a crashed trail = %v, want ErrTruncated", err)
	}
	// Open repairs it (the line was never acknowledged) and continues.
	tr := open(t, dir, Options{})
	recordN(t, tr, 10, 2)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 12 {
		t.Errorf("records after repair = %d, want 12", rep.Records)
	}
}

func TestOpenRefusesBrokenTrail(t *testing.T) {
	for name, tamper := range map[string]func(dir string){
		"edited": func(dir string) {
			fs := files(t, dir)
			editLines(t, filepath.Join(dir, fs[len(fs)-1].Name), func(l [][]byte) [][]byte {
				l[0] = bytes.Replace(l[0], []byte("Doe^J"), []byte("Doe^K"), 1)
				return l
			})
		},
		"tail removed": func(dir string) {
			fs := files(t, dir)
			editLines(t, filepath.Join(dir, fs[len(fs)-1].Name), func(l [][]byte) [][]byte { return l[:len(l)-1] })
		},
		"key removed": func(dir string) { os.Remove(filepath.Join(dir, keyFile)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeTrail(t, 10)
			tamper(dir)
			if tr, err := Open(dir, Options{}, testLogger(t)); err == nil {
				tr.Close()
				t.Fatal("Open accepted a broken trail")
			}
		})
	}
}

func TestRetentionPrunes(t *testing.T) {
	dir := t.TempDir()
	c := peertest.NewClock(when)
	opt := Options{Now: c.Now, Retention: 30 * 24 * time.Hour}
	tr := open(t, dir, opt)
	// The record time is when the writer appends, so each day's records
	// are flushed before the clock moves.
	day := func(from, n int, next time.Duration) {
		recordN(t, tr, from, n)
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Add(next)
	}
	day(0, 4, 24*time.Hour)    // day 0: seq 1-4
	day(4, 3, 24*time.Hour)    // day 1: seq 5-7
	day(7, 2, 30*24*time.Hour) // day 2: seq 8-9
	recordN(t, tr, 9, 1)       // day 32: days 0 and 1 end before the cutoff; day 2 does not
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: seq 8-9, then the prune record (10), then the new record (11).
	if rep.FirstSeq != 8 || rep.LastSeq != 11 || rep.Records != 4 {
		t.Errorf("after prune: %+v", rep)
	}
	// The prune is itself audited.
	fs := files(t, dir)
	b, _ := os.ReadFile(filepath.Join(dir, fs[len(fs)-1].Name))
	r, err := parseRecord(bytes.SplitAfter(b, []byte("\n"))[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := Unmarshal([]byte(r.Msg))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{m.Event.EventID.Code, string(m.Event.ActionCode)}
	if d := cmp.Diff([]string{"110101", "D"}, got); d != "" || r.Seq != 10 {
		t.Errorf("prune record seq %d (-want +got):\n%s", r.Seq, d)
	}
	// Removing the first kept file now breaks the ANCHOR check.
	os.Remove(filepath.Join(dir, fs[0].Name))
	if _, err := Verify(dir); !errors.Is(err, ErrTampered) {
		t.Errorf("Verify without the first kept file = %v, want ErrTampered", err)
	}
}

func TestStartedRecordsConfigChange(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	app := AppEvent{App: Node{ID: "radgate"}}
	events := func() []string {
		var ids []string
		for _, f := range files(t, dir) {
			c := chain{key: mustKey(t, dir), next: f.First}
			c.scanFile(dir, f, func(r record) {
				m, _ := Unmarshal([]byte(r.Msg))
				ids = append(ids, m.Event.EventID.Code)
			})
		}
		return ids
	}
	for _, fp := range []string{"sha256:a", "sha256:a", "sha256:b"} {
		tr := open(t, dir, Options{})
		if err := tr.Started(ctx, app, fp); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"110100", "110113", "110100", "110100", "110113"}
	if d := cmp.Diff(want, events()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func mustKey(t *testing.T, dir string) []byte {
	k, err := loadKey(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{}).Close()
	st, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("chain.key mode %v, want 0600", st.Mode().Perm())
	}
}
