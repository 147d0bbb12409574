package worklist

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
)

func TestHL7Escape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		`a|b^c~d\e&f`:   `a\F\b\S\c\R\d\E\e\T\f`,
		"two\nlines\r":  `two\.br\lines`,
		"tab\there\x00": "tab here ",
		"Müller":        "Müller",
	} {
		if got := HL7Escape(in); got != want {
			t.Errorf("HL7Escape(%q) = %q, want %q", in, got, want)
		}
	}
	for p, want := range map[inference.Priority]string{inference.Stat: "S", inference.High: "A", inference.Routine: "R", inference.Low: "R"} {
		if got := TQ1Priority(p); got != want {
			t.Errorf("TQ1Priority(%v) = %q", p, got)
		}
	}
}

// hl7Instances are instances(3) with delimiters in the patient's name and
// the accession number.
func hl7Instances() []store.Instance {
	ins := instances(3)
	for i := range ins {
		ins[i].PatientName = "O|Brien^Mary&Ann"
		ins[i].AccessionNumber = "ACC^7"
	}
	return ins
}

func (f *fixture) hl7Study(t *testing.T, p float64) store.Job {
	t.Helper()
	ins := hl7Instances()
	jobs, err := f.st.Work().Evaluate(context.Background(), testStudy, 1, "routed", []store.NewJob{{
		Model: "ct-ich", Route: "head-ct", Priority: int(inference.Routine), Series: []string{testStudy + ".1"}, Digest: "d1", ReadyAt: time.Now(),
	}}, store.Effects{Workitem: f.wl.StudyComplete(testStudy, ins, inference.Routine, []string{"head-ct"})})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Evaluate: %v, %v", jobs, err)
	}
	fx := store.Effects{Workitem: f.wl.JobDone(Result{Model: "ct-ich", Version: "1.0.0", Job: jobs[0], Result: result(p), SRUID: "1.2.3.4", Instances: ins})}
	if err := f.st.Work().CompleteJob(context.Background(), jobs[0].ID, "1.0.0", []byte("{}"), fx); err != nil {
		t.Fatal(err)
	}
	return jobs[0]
}

// fields is segment name's fields (fields[n] is field n; MSH counted as
// HL7 does, MSH-1 the separator).
func fields(t *testing.T, msg []byte, name string) []string {
	t.Helper()
	for _, seg := range strings.Split(string(msg), "\r") {
		if strings.HasPrefix(seg, name+"|") {
			f := strings.Split(seg, "|")
			if name == "MSH" {
				f = append([]string{"MSH", "|"}, f[1:]...)
			}
			return f
		}
	}
	t.Fatalf("no %s in %q", name, msg)
	return nil
}

func field(f []string, n int) string {
	if n < len(f) {
		return f[n]
	}
	return ""
}

func TestHL7Messages(t *testing.T) {
	const dest = "mllp://127.0.0.1:2575"
	sink := NewHL7Sink(dest, "RADGATE", "HOSP")
	sink.Phantoms = func(m, v string) bool { return m == "ct-ich" && v == "1.0.0" }
	f := newFixture(t, sink)
	f.hl7Study(t, 0.93)
	ds, err := f.st.Work().DueDeliveries(context.Background(), dest, time.Now().Add(time.Hour), 16)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]store.Delivery{}
	for _, d := range ds {
		kinds[d.Kind] = d
	}
	if len(ds) != 2 || kinds[KindHL7Result].Payload == nil || kinds[KindHL7Order].Payload == nil {
		t.Fatalf("deliveries: %+v", ds)
	}
	for kind, typ := range map[string]string{KindHL7Result: "ORU^R01^ORU_R01", KindHL7Order: "OMI^O23^OMI_O23"} {
		d := kinds[kind]
		msh := fields(t, d.Payload, "MSH")
		if field(msh, 2) != `^~\&` || field(msh, 3) != "RADGATE" || field(msh, 4) != "HOSP" || field(msh, 9) != typ ||
			field(msh, 10) != d.ObjectUID || len(d.ObjectUID) != 20 || field(msh, 12) != "2.5" || field(msh, 18) != "UNICODE UTF-8" {
			t.Errorf("%s MSH: %q", kind, msh)
		}
		pid := fields(t, d.Payload, "PID")
		if field(pid, 3) != "PHANTOM-7^^^^PI" || field(pid, 5) != `O\F\Brien^Mary\T\Ann` || field(pid, 7) != "19600101" {
			t.Errorf("%s PID: %q", kind, pid)
		}
		orc, obr := fields(t, d.Payload, "ORC"), fields(t, d.Payload, "OBR")
		if field(orc, 3) != `ACC\S\7` || field(obr, 3) != `ACC\S\7` || field(obr, 18) != `ACC\S\7` {
			t.Errorf("%s ORC %q OBR %q", kind, orc, obr)
		}
		if tq1 := fields(t, d.Payload, "TQ1"); field(tq1, 9) != "S" {
			t.Errorf("%s TQ1: %q", kind, tq1)
		}
		if !strings.Contains(string(d.Payload), PreliminaryNote) || !strings.Contains(string(d.Payload), PhantomNote) {
			t.Errorf("%s without the notes: %q", kind, d.Payload)
		}
	}
	omi := kinds[KindHL7Order].Payload
	if orc := fields(t, omi, "ORC"); field(orc, 1) != "XO" {
		t.Errorf("ORC-1 %q", field(orc, 1))
	}
	if ipc := fields(t, omi, "IPC"); field(ipc, 1) != `ACC\S\7` || !strings.HasPrefix(field(ipc, 3), testStudy+"^") {
		t.Errorf("IPC: %q", ipc)
	}
	oru := kinds[KindHL7Result].Payload
	obx := fields(t, oru, "OBX")
	if field(obx, 2) != "NM" || field(obx, 3) != "50960005^Hemorrhage^SCT" || field(obx, 5) != "0.9300" || field(obx, 8) != "A" ||
		field(obx, 11) != "P" || field(obx, 17) != "ct-ich@1.0.0^AI model^L" {
		t.Errorf("OBX: %q", obx)
	}
	if zds := fields(t, oru, "ZDS"); !strings.HasPrefix(field(zds, 1), testStudy+"^RADGATE^Application^DICOM") {
		t.Errorf("ZDS: %q", zds)
	}
	if obr := fields(t, oru, "OBR"); field(obr, 25) != "P" {
		t.Errorf("ORU OBR-25 %q", field(obr, 25))
	}

	// The control ID is the workitem's state before the change: the same
	// change made again (a rolled-back transaction) has the same, the
	// next change another.
	w, err := f.wl.OfStudy(context.Background(), testStudy)
	if err != nil {
		t.Fatal(err)
	}
	evs := []store.WorklistEvent{{Kind: "priority", Actor: "page:dr", From: "STAT", To: "ROUTINE", Reason: "reviewed"}}
	a, _ := sink.Deliveries(w, evs, nil)
	b, _ := sink.Deliveries(w, evs, nil)
	if len(a) != 1 || a[0].ObjectUID != b[0].ObjectUID || a[0].ObjectUID == kinds[KindHL7Order].ObjectUID {
		t.Errorf("control IDs: %v %v (earlier %s)", a, b, kinds[KindHL7Order].ObjectUID)
	}
	w.Seq++
	if c, _ := sink.Deliveries(w, evs, nil); c[0].ObjectUID == a[0].ObjectUID {
		t.Errorf("another state, the same control ID %s", a[0].ObjectUID)
	}
	if strings.Contains(string(a[0].Payload), PreliminaryNote) {
		t.Errorf("a person's change called an AI result: %q", a[0].Payload)
	}
	// A negative result: an ORU, no order change.
	if out, _ := sink.Deliveries(w, []store.WorklistEvent{{Kind: "findings"}}, &Result{Model: "ct-ich", Version: "1.0.0", Result: result(0.1)}); len(out) != 1 ||
		out[0].Kind != KindHL7Result || field(fields(t, out[0].Payload, "OBX"), 8) != "N" {
		t.Errorf("negative: %+v", out)
	}
}

// outbox runs a delivery outbox over f's store.
func (f *fixture) outbox(t *testing.T) *delivery.Outbox {
	t.Helper()
	o, err := delivery.New(f.st.Work(), delivery.Config{MaxAttempts: 20, Backoff: 200 * time.Millisecond, BackoffMax: 400 * time.Millisecond, Poll: 50 * time.Millisecond},
		nil, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { o.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return o
}

func waitMessages(t *testing.T, path string, n int) []peertest.HL7Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ms, err := peertest.ReadHL7Messages(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages within 30s, want %d: %+v", len(ms), n, ms)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitOutboxDrained(t *testing.T, st *store.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := st.Work().WorkCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n.Deliveries[store.DeliveryPending] == 0 && n.Deliveries[store.DeliveryDead] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %v", n.Deliveries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHL7ToRIS: python3-hl7's MLLP receiver parses the ORU and OMI of a
// positive finding (STAT), then the OMI of a person lowering it.
func TestHL7ToRIS(t *testing.T) {
	peertest.Require(t, "hl7")
	msgs := filepath.Join(t.TempDir(), "msgs.jsonl")
	srv := peertest.StartHL7Server(t, peertest.MustFreePort(t), "AA", msgs)
	sink := NewHL7Sink("mllp://"+srv.Addr, "RADGATE", "HOSP")
	sink.Phantoms = func(string, string) bool { return true }
	f := newFixture(t, sink)
	o := f.outbox(t)
	f.hl7Study(t, 0.93)
	o.Notify()
	ms := waitMessages(t, msgs, 2)
	slices.SortFunc(ms, func(a, b peertest.HL7Message) int { return strings.Compare(a.Type, b.Type) })
	omi, oru := ms[0], ms[1]
	if omi.Type != "OMI^O23" || omi.OrderControl != "XO" || omi.Priority != "S" || omi.Accession != "ACC^7" || omi.StudyUID != testStudy ||
		omi.PatientID != "PHANTOM-7" || omi.PatientFamily != "O|Brien" || omi.PatientGiven != "Mary&Ann" || omi.Version != "2.5" {
		t.Errorf("OMI as parsed: %+v", omi)
	}
	if !slices.ContainsFunc(omi.Notes, func(n string) bool { return strings.Contains(n, "ROUTINE -> STAT") }) {
		t.Errorf("OMI notes: %q", omi.Notes)
	}
	if oru.Type != "ORU^R01" || oru.Priority != "S" || oru.ResultStatus != "P" || oru.StudyUID != testStudy || len(oru.OBX) != 1 ||
		oru.OBX[0].Code != "50960005" || oru.OBX[0].Value != "0.9300" || oru.OBX[0].Flag != "A" || oru.OBX[0].Status != "P" ||
		!slices.Contains(oru.Notes, PreliminaryNote) || !slices.Contains(oru.Notes, PhantomNote) {
		t.Errorf("ORU as parsed: %+v", oru)
	}

	// A radiologist lowers it: an OMI with R.
	w, err := f.wl.OfStudy(context.Background(), testStudy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.wl.SetPriority(context.Background(), w.UID, inference.Routine, "page:dr", "not a bleed"); err != nil {
		t.Fatal(err)
	}
	o.Notify()
	ms = waitMessages(t, msgs, 3)
	if m := ms[2]; m.Type != "OMI^O23" || m.Priority != "R" || m.ControlID == omi.ControlID {
		t.Errorf("after the change: %+v", m)
	}
	waitOutboxDrained(t, f.st)
}

// TestHL7RISDown: the messages wait in the outbox while the receiver is
// down, are retried, and arrive exactly once when it comes up.
func TestHL7RISDown(t *testing.T) {
	peertest.Require(t, "hl7")
	port := peertest.MustFreePort(t)
	msgs := filepath.Join(t.TempDir(), "msgs.jsonl")
	dest := "mllp://127.0.0.1:" + strconv.Itoa(port)
	f := newFixture(t, NewHL7Sink(dest, "RADGATE", "HOSP"))
	o := f.outbox(t)
	f.hl7Study(t, 0.93)
	o.Notify()
	// Wait for failed attempts.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := f.st.Work().DueDeliveries(context.Background(), dest, time.Now().Add(time.Hour), 16)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 2 && ds[0].Attempts >= 2 && ds[1].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retries: %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	peertest.StartHL7Server(t, port, "AA", msgs)
	ms := waitMessages(t, msgs, 2)
	waitOutboxDrained(t, f.st)
	time.Sleep(time.Second) // several polls and backoffs: nothing more comes
	if ms2, err := peertest.ReadHL7Messages(msgs); err != nil || len(ms2) != 2 || ms[0].ControlID == ms[1].ControlID {
		t.Fatalf("after the receiver came up: %+v, %v", ms2, err)
	}
}
