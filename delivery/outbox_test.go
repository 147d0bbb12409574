package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		dest string
		ok   bool
		want string // in the error
	}{
		{"dimse://PACS@127.0.0.1:104", true, ""},
		{"dimse://PACS@[::1]:104", true, ""},
		{"dimse://127.0.0.1:104", false, "want dimse://AE@HOST:PORT"},
		{"dimse://PACS@127.0.0.1", false, "want dimse://AE@HOST:PORT"},
		{"dimse://WAYTOOLONGAETITLE17@h:1", false, "want dimse://AE@HOST:PORT"},
		{"dimse+tls://PACS@127.0.0.1:2762", true, ""},
		{"dimse+tls://127.0.0.1:2762", false, "want dimse+tls://AE@HOST:PORT"},
		{"https://pacs.example/dicomweb", true, ""},
		{"https://pacs.example/dicomweb?x=1", false, "DICOMweb base URL"},
		{"ftp://x", false, "unknown scheme"},
		{"http:///nohost", false, "DICOMweb base URL"},
		{"::", false, "invalid destination"},
	} {
		_, err := Parse(tc.dest, Config{CallingAE: "RADGATE", TLS: &tls.Config{}})
		if (err == nil) != tc.ok || (err != nil && (!errors.Is(err, ErrDestination) || !strings.Contains(err.Error(), tc.want))) {
			t.Errorf("Parse(%q) = %v; want ok=%v, error with %q", tc.dest, err, tc.ok, tc.want)
		}
	}
	if _, err := Parse("dimse+tls://PACS@127.0.0.1:2762", Config{CallingAE: "RADGATE"}); !errors.Is(err, ErrDestination) {
		t.Errorf("dimse+tls without a TLS configuration: %v", err)
	}
	if got := Redact("dimse://PACS@10.0.0.1:104"); got != "dimse://PACS@10.0.0.1:104" {
		t.Errorf("Redact kept %q", got)
	}
}

func TestBackoff(t *testing.T) {
	o := &Outbox{cfg: Config{Backoff: time.Second, BackoffMax: 10 * time.Second}}
	for attempts, base := range []time.Duration{1, 2, 4, 8, 10, 10, 10} {
		d := o.backoff(attempts)
		lo, hi := time.Duration(float64(base*time.Second)*0.8), time.Duration(float64(base*time.Second)*1.2)
		if d < lo || d > hi {
			t.Errorf("backoff(%d) = %v, want in [%v, %v]", attempts, d, lo, hi)
		}
	}
}

// queue completes one job whose result is a phantom CT slice for each
// destination: a real Part 10 object any storescp takes.
func queue(t *testing.T, st *store.Store, dests ...string) (store.Job, []byte) {
	t.Helper()
	ctx := context.Background()
	ins, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 3, Slices: 1})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := st.Work().Evaluate(ctx, "1.2.3", 1, "routed", []store.NewJob{{Model: "m", Route: "r", Digest: "d", Destinations: dests}}, store.Effects{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.NewDelivery
	for _, d := range dests {
		out = append(out, store.NewDelivery{Destination: d, Kind: "sr", ObjectUID: ins[0].SOPInstanceUID,
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", Payload: ins[0].Data, ReadyAt: time.Now()})
	}
	if err := st.Work().CompleteJob(ctx, jobs[0].ID, "1", nil, store.Effects{Deliveries: out}); err != nil {
		t.Fatal(err)
	}
	return jobs[0], ins[0].Data
}

func openStore(t *testing.T) *store.Store {
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), SegmentSize: 1 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func run(t *testing.T, o *Outbox) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { o.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func waitState(t *testing.T, st *store.Store, job int64, dest string, want store.DeliveryState, timeout time.Duration) store.Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ds, err := st.Work().Deliveries(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Destination == dest && d.State == want {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery to %s not %s within %v: %+v", dest, want, timeout, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutboxDCMTK delivers to a real storescp. A second destination that
// is down does not hold the first back; it is retried with backoff and
// delivered once its storescp starts; a third, never up, is dead-lettered
// after the maximum of attempts.
func TestOutboxDCMTK(t *testing.T) {
	peertest.Require(t, "storescp")
	st := openStore(t)
	upDir, lateDir := t.TempDir(), t.TempDir()
	up := peertest.StartStorescp(t, upDir, "PACS", 0)
	latePort, deadPort := peertest.MustFreePort(t), peertest.MustFreePort(t)
	upDest := "dimse://PACS@" + up.Addr()
	lateDest := "dimse://LATE@127.0.0.1:" + strconv.Itoa(latePort)
	deadDest := "dimse://DEAD@127.0.0.1:" + strconv.Itoa(deadPort)
	reg := prometheus.NewRegistry()
	o, err := New(st.Work(), Config{CallingAE: "RADGATE", MaxAttempts: 4, Backoff: 300 * time.Millisecond, BackoffMax: 2 * time.Second, Poll: 50 * time.Millisecond}, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	job, payload := queue(t, st, upDest, lateDest, deadDest)
	run(t, o)
	o.Notify()

	waitState(t, st, job.ID, upDest, store.DeliveryDelivered, 10*time.Second)
	got := received(t, upDir)
	if len(got) != 1 || !bytes.HasSuffix(payload, datasetOf(t, got[0])) {
		t.Fatalf("storescp received %d files; want the payload's data set once", len(got))
	}
	// The late destination failed once; its storescp starts now, before
	// the next attempt (300 ms later at the earliest).
	for deadline := time.Now().Add(10 * time.Second); ; {
		ds, _ := st.Work().Deliveries(context.Background(), job.ID)
		if i := slices.IndexFunc(ds, func(d store.Delivery) bool { return d.Destination == lateDest && d.Attempts > 0 }); i >= 0 {
			if ds[i].State != store.DeliveryPending || !strings.Contains(ds[i].LastError, "connect") {
				t.Fatalf("late delivery after a failure: %+v", ds[i])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt at the late destination")
		}
		time.Sleep(10 * time.Millisecond)
	}
	peertest.StartStorescpWith(t, peertest.StorescpConfig{Dir: lateDir, AE: "LATE", Port: latePort, BitPreserving: true})
	late := waitState(t, st, job.ID, lateDest, store.DeliveryDelivered, 10*time.Second)
	if n := len(received(t, lateDir)); n != 1 || late.Attempts < 2 {
		t.Errorf("late storescp received %d files after %d attempts; want 1 after at least 2", n, late.Attempts)
	}
	dead := waitState(t, st, job.ID, deadDest, store.DeliveryDead, 15*time.Second)
	if dead.Attempts != 4 || !strings.Contains(dead.LastError, "connect") {
		t.Errorf("dead delivery %+v: want 4 attempts and the connect error", dead)
	}
	// The metric follows the recorded state by a moment.
	for deadline := time.Now().Add(2 * time.Second); testutil.ToFloat64(o.m.attempts.WithLabelValues("sr", "dead")) != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := testutil.ToFloat64(o.m.attempts.WithLabelValues("sr", "dead")); n != 1 {
		t.Errorf("dead attempts metric = %v, want 1", n)
	}
	if n := testutil.ToFloat64(o.m.attempts.WithLabelValues("sr", "delivered")); n != 2 {
		t.Errorf("delivered attempts metric = %v, want 2", n)
	}
	if n := len(received(t, upDir)); n != 1 {
		t.Errorf("the first storescp received %d files in all, want 1 (no redelivery)", n)
	}
}

// received lists the files a storescp wrote.
func received(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			out = append(out, f)
		}
	}
	return out
}

// datasetOf is a received file's data set (after its file meta).
func datasetOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := peertest.DatasetBytes(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
