package web

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/internal/worklisttest"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/worklist"
)

type fixture struct {
	st  *store.Store
	wl  *worklist.Service
	web *Server
	srv *httptest.Server
	log *syncBuffer // what the page logged
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newFixture is the page over a real store and worklist, served.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, wl := worklisttest.Open(t)
	logs := &syncBuffer{}
	t.Cleanup(func() { peertest.NoPHI(t, "page log", logs.String()) })
	ws, err := New(wl, Config{}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ws.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(ws.Close) // runs first: ends the event streams
	return &fixture{st: st, wl: wl, web: ws, srv: srv, log: logs}
}

func studyUID(n int) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.999.%d", n) }

// instances are a study's index records as the store gives them: n
// slices of one series, received at at.
func instances(study int, modality, desc string, n int, at time.Time) []store.Instance {
	var out []store.Instance
	st := studyUID(study)
	for i := range n {
		out = append(out, store.Instance{
			SOPInstanceUID: fmt.Sprintf("%s.1.%d", st, i+1), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
			SeriesInstanceUID: st + ".1", StudyInstanceUID: st,
			PatientID: fmt.Sprintf("PHANTOM-%d", study), PatientName: fmt.Sprintf("Phantom^Number%d", study),
			AccessionNumber: fmt.Sprintf("ACC%d", study), StudyDescription: desc, Modality: modality,
			ReceivedAt: at.Add(time.Duration(i) * time.Second), SpecificCharacterSet: "ISO_IR 100",
		})
	}
	return out
}

type study struct {
	n   int
	ins []store.Instance
	job store.Job
}

// complete evaluates a study as the assembler does: its workitem at pri.
func (f *fixture) complete(t *testing.T, n int, modality, desc string, pri inference.Priority, at time.Time) study {
	t.Helper()
	ins := instances(n, modality, desc, 5, at)
	st := studyUID(n)
	jobs, err := f.st.Work().Evaluate(context.Background(), st, 1, "routed", []store.NewJob{{
		Model: "ct-ich", Route: "head-ct", Priority: int(pri), Series: []string{st + ".1"}, Digest: "d1", ReadyAt: time.Now(),
	}}, store.Effects{Workitem: f.wl.StudyComplete(st, ins, pri, []string{"head-ct"})})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Evaluate: %v, %v", jobs, err)
	}
	return study{n: n, ins: ins, job: jobs[0]}
}

// done completes the study's job as the runner does, with a hemorrhage
// probability of p (positive, and STAT, at 0.5 and above).
func (f *fixture) done(t *testing.T, s study, p float64) {
	t.Helper()
	pos := p >= 0.5
	pri := "ROUTINE"
	if pos {
		pri = "STAT"
	}
	res := &inference.Result{Model: "ct-ich", Version: "1.0.0", Priority: pri, Findings: []inference.Finding{{
		Label: "hemorrhage", Concept: models.Concept{Scheme: "SCT", Code: "50960005", Meaning: "Hemorrhage"},
		Probability: p, Threshold: 0.5, Positive: pos,
	}}}
	fx := store.Effects{Workitem: f.wl.JobDone(worklist.Result{Model: "ct-ich", Version: "1.0.0", Job: s.job, Result: res,
		SRUID: studyUID(s.n) + ".9.1", Instances: s.ins})}
	if err := f.st.Work().CompleteJob(context.Background(), s.job.ID, "1.0.0", []byte("{}"), fx); err != nil {
		t.Fatal(err)
	}
}
