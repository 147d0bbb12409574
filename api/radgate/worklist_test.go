package radgate

import (
	"context"
	"testing"
	"time"

	radgatev1 "github.com/radgate/radgate/api/radgate/v1"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/worklisttest"
	"github.com/radgate/radgate/worklist"
)

// newWorklist is a running worklist over a fresh store.
func newWorklist(t *testing.T) *worklist.Service {
	t.Helper()
	_, wl := worklisttest.Open(t)
	return wl
}

func TestWatchWorklist(t *testing.T) {
	wl := newWorklist(t)
	f := serve(t, Config{Worklist: wl})

	d, _ := worklist.ParseDataset([]byte(`{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741204":{"vr":"LO","Value":["Read"]}}`))
	before, err := wl.Create(t.Context(), "2.25.54", d, "ups-rs")
	if err != nil {
		t.Fatal(err)
	}
	w, err := wl.Create(t.Context(), "2.25.55", d, "ups-rs")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	// Resuming after the first change: the second creation comes first.
	stream, err := f.client.WatchWorklist(wctx, &radgatev1.WatchWorklistRequest{AfterSeq: before.Seq})
	if err != nil {
		t.Fatal(err)
	}
	c, err := stream.Recv()
	if err != nil || c.Kind != "created" || c.WorkitemUid != "2.25.55" || c.Workitem.GetState() != "SCHEDULED" {
		t.Fatalf("first change: %v, %v", c, err)
	}
	if _, err := wl.SetPriority(t.Context(), "2.25.55", inference.Stat, "page", "called by the ED"); err != nil {
		t.Fatal(err)
	}
	c, err = stream.Recv()
	if err != nil || c.Kind != "priority" || c.To != "STAT" || c.Workitem.GetPriority() != "STAT" || c.Workitem.GetUpsPriority() != "HIGH" ||
		!c.Workitem.GetOverride() || c.Seq <= w.Seq || c.Reason != "called by the ED" {
		t.Fatalf("priority change: %v, %v", c, err)
	}
}
