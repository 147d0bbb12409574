package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
)

// ignoreStorage drops the fields a test cannot predict.
var ignoreStorage = cmpopts.IgnoreFields(Instance{}, "CallingAE", "CalledAE", "RemoteAddr", "Source",
	"ReceivedAt", "Size", "SHA256", "BlobKey", "DatasetOffset", "Seq")

func TestIngestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{})
	d := ds{sop: "1.2.826.0.1.3680043.10.999.1.1.1", pixels: 4096, fill: 7}
	in, dataset := d.incoming(), d.bytes()

	before := time.Now().UTC()
	res, err := s.Ingest(ctx, in, bytes.NewReader(dataset))
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	if res.Outcome != Stored {
		t.Errorf("outcome %v, want stored", res.Outcome)
	}
	if diff := cmp.Diff(d.want(), res.Instance, ignoreStorage); diff != "" {
		t.Errorf("Result.Instance (-want +got):\n%s", diff)
	}
	// Right away the Store answers from what it acknowledged; once indexed,
	// the record has its SHA-256 too.
	got, err := s.Instance(ctx, in.SOPInstanceUID)
	if err != nil {
		t.Fatalf("Instance: %v", err)
	}
	// (The indexer may have been quicker: then the record has its digest.)
	early := res.Instance
	if got.SHA256 != "" {
		early.SHA256 = sha256Hex(readBlob(t, s, got.BlobKey))
	}
	if diff := cmp.Diff(early, got); diff != "" {
		t.Errorf("Instance before indexing differs from Result.Instance (-result +index):\n%s", diff)
	}
	if n, err := s.CountInstances(ctx); err != nil || n != 1 {
		t.Errorf("CountInstances = %d, %v; want 1", n, err)
	}
	if got, err = s.Instance(ctx, in.SOPInstanceUID); err != nil {
		t.Fatalf("Instance: %v", err)
	}
	if diff := cmp.Diff(res.Instance, got, cmpopts.IgnoreFields(Instance{}, "SHA256")); diff != "" {
		t.Errorf("indexed Instance differs from Result.Instance (-result +index):\n%s", diff)
	}
	if got.CallingAE != "MODALITY1" || got.CalledAE != "RADGATE" || got.Source != "dimse" || got.RemoteAddr != "192.0.2.7:40000" {
		t.Errorf("reception fields: %+v", got)
	}
	if got.ReceivedAt.Before(before.Add(-time.Second)) || got.ReceivedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("ReceivedAt %v not around now", got.ReceivedAt)
	}

	want := part10(t, in, dataset)
	blob := readBlob(t, s, got.BlobKey)
	if !bytes.Equal(blob, want) {
		t.Errorf("blob is not file meta + data set: %d bytes, want %d", len(blob), len(want))
	}
	if got.Size != int64(len(want)) || got.SHA256 != sha256Hex(want) || got.Seq == 0 {
		t.Errorf("Size %d SHA256 %s Seq %d; want %d %s and a sequence number", got.Size, got.SHA256, got.Seq, len(want), sha256Hex(want))
	}
	if !bytes.Equal(blob[got.DatasetOffset:], dataset) {
		t.Errorf("DatasetOffset %d does not point at the data set", got.DatasetOffset)
	}
	meta, _, err := dcm.OpenPart10(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := dcm.FileMeta{
		MediaStorageSOPClassUID: in.SOPClassUID, MediaStorageSOPInstanceUID: in.SOPInstanceUID,
		TransferSyntaxUID: in.TransferSyntaxUID, ImplementationClassUID: dcm.ImplementationClassUID,
		ImplementationVersionName: dcm.ImplementationVersionName, SourceApplicationEntityTitle: "MODALITY1",
	}
	if diff := cmp.Diff(wantMeta, meta); diff != "" {
		t.Errorf("file meta (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{got.BlobKey: true}, committed(t, s.cfg.DataDir)); diff != "" {
		t.Errorf("records in the log (-want +got):\n%s", diff)
	}
	if _, err := s.Instance(ctx, "1.2.3.999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Instance(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.OpenBlob(ctx, strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.OpenBlob(ctx, "../../index.db"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob(path) = %v, want ErrNotFound", err)
	}
	if _, err := s.OpenBlob(ctx, blobKey(999, 64, 10)); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob(no such segment) = %v, want ErrNotFound", err)
	}
	if err := s.Writable(ctx); err != nil {
		t.Errorf("Writable: %v", err)
	}
}

func TestDuplicatePolicies(t *testing.T) {
	const uid = "1.2.826.0.1.3680043.10.999.1.1.2"
	first := ds{sop: uid, fill: 1}
	other := ds{sop: uid, fill: 2}
	fromOtherAE := func(in Incoming) Incoming { in.CallingAE = "OTHERPACS"; return in }
	same := func(in Incoming) Incoming { return in }
	tests := []struct {
		name     string
		policy   DuplicatePolicy
		second   ds
		in       func(Incoming) Incoming
		want     Outcome
		wantErr  error
		wantBlob ds // the content current afterwards
	}{
		{"same content keep-first", KeepFirst, first, same, DuplicateSame, nil, first},
		{"same content replace", Replace, first, same, DuplicateSame, nil, first},
		{"same content reject", Reject, first, same, DuplicateSame, nil, first},
		{"same data set from another AE", Reject, first, fromOtherAE, DuplicateSame, nil, first},
		{"other content keep-first", KeepFirst, other, same, DuplicateKept, nil, first},
		{"other content replace", Replace, other, same, Replaced, nil, other},
		{"other content reject", Reject, other, same, 0, ErrDuplicateRejected, first},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, Config{Duplicates: tt.policy})
			res1, err := s.Ingest(ctx, first.incoming(), bytes.NewReader(first.bytes()))
			if err != nil {
				t.Fatal(err)
			}
			in2 := tt.in(tt.second.incoming())
			res2, err := s.Ingest(ctx, in2, bytes.NewReader(tt.second.bytes()))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("second Ingest error %v, want %v", err, tt.wantErr)
			}
			if err == nil && res2.Outcome != tt.want {
				t.Errorf("outcome %v, want %v", res2.Outcome, tt.want)
			}
			if n, _ := s.CountInstances(ctx); n != 1 {
				t.Errorf("%d instances, want 1", n)
			}
			cur, err := s.Instance(ctx, uid)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr == nil && !cmp.Equal(res2.Instance, cur, cmpopts.IgnoreFields(Instance{}, "SHA256")) {
				t.Errorf("Result.Instance is not the current record:\n%s", cmp.Diff(cur, res2.Instance))
			}
			wantIn := first.incoming()
			if tt.want == Replaced {
				wantIn = in2
			}
			if got, want := readBlob(t, s, cur.BlobKey), part10(t, wantIn, tt.wantBlob.bytes()); !bytes.Equal(got, want) {
				t.Errorf("current blob is not the expected content")
			}
			// The log keeps what was committed: a replaced record stays
			// until its segment is reclaimed; a duplicate never was.
			want := map[string]bool{res1.Instance.BlobKey: true, cur.BlobKey: true}
			if diff := cmp.Diff(want, committed(t, s.cfg.DataDir)); diff != "" {
				t.Errorf("records in the log (-want +got):\n%s", diff)
			}
			if tt.want != Replaced && cur.BlobKey != res1.Instance.BlobKey {
				t.Errorf("blob key changed without a replace")
			}
		})
	}
}

func TestInvalidDataset(t *testing.T) {
	const uid = "1.2.826.0.1.3680043.10.999.1.1.3"
	good := ds{sop: uid}
	truncated := good.bytes()
	truncated = truncated[:len(truncated)-10]
	tests := []struct {
		name    string
		in      Incoming
		data    []byte
		wantErr error
		wantMsg string
	}{
		{"SOP Instance UID mismatch", ds{sop: "1.2.3.4"}.incoming(), good.bytes(), ErrInvalidDataset, "SOP Instance UID"},
		{"SOP Class UID mismatch", func() Incoming { in := good.incoming(); in.SOPClassUID = mrImageStorage; return in }(),
			good.bytes(), ErrInvalidDataset, "SOP Class UID"},
		{"no Study Instance UID", good.incoming(), ds{sop: uid, omit: dcm.StudyInstanceUID}.bytes(), ErrInvalidDataset, "Study Instance UID"},
		{"no Series Instance UID", good.incoming(), ds{sop: uid, omit: dcm.SeriesInstanceUID}.bytes(), ErrInvalidDataset, "Series Instance UID"},
		{"no SOP Instance UID", good.incoming(), ds{sop: uid, omit: dcm.SOPInstanceUID}.bytes(), ErrInvalidDataset, "lacks SOP Instance UID"},
		{"truncated", good.incoming(), truncated, ErrInvalidDataset, "truncated"},
		{"empty", good.incoming(), nil, ErrInvalidDataset, "lacks"},
		{"garbage", good.incoming(), bytes.Repeat([]byte{0xff}, 300), ErrInvalidDataset, "malformed"},
		{"declared UID invalid", func() Incoming { in := good.incoming(); in.SOPInstanceUID = "1.02.x"; return in }(),
			good.bytes(), ErrInvalidDataset, "not a valid UID"},
		{"unknown transfer syntax", func() Incoming { in := good.incoming(); in.TransferSyntaxUID = "1.2.3.4.5.6"; return in }(),
			good.bytes(), ErrUnknownTransferSyntax, "1.2.3.4.5.6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Config{})
			_, err := s.Ingest(context.Background(), tt.in, bytes.NewReader(tt.data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "Doe^Jane") || strings.Contains(err.Error(), "PID-0001") {
				t.Errorf("error carries PHI: %v", err)
			}
			assertNothingStored(t, s)
		})
	}
}

func assertNothingStored(t *testing.T, s *Store) {
	t.Helper()
	if keys := committed(t, s.cfg.DataDir); len(keys) != 0 {
		t.Errorf("records committed: %v", keys)
	}
	if n, _ := s.CountInstances(context.Background()); n != 0 {
		t.Errorf("%d instances indexed", n)
	}
}

// failingReader yields n bytes of r, then err: an association aborted
// mid-data set.
type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestAbortedReader(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{})
	kept := ds{sop: "1.2.826.0.1.3680043.10.999.1.1.4"}
	if _, err := s.Ingest(ctx, kept.incoming(), bytes.NewReader(kept.bytes())); err != nil {
		t.Fatal(err)
	}
	before := committed(t, s.cfg.DataDir)

	errAbort := errors.New("association aborted")
	big := ds{sop: "1.2.826.0.1.3680043.10.999.1.1.5", pixels: 1 << 20}
	for _, n := range []int{0, 100, 300 << 10, 1<<20 - 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, err := s.Ingest(ctx, big.incoming(), &failingReader{r: bytes.NewReader(big.bytes()), n: n, err: errAbort})
			if !errors.Is(err, errAbort) {
				t.Fatalf("error %v, want it to wrap the reader's", err)
			}
			if diff := cmp.Diff(before, committed(t, s.cfg.DataDir)); diff != "" {
				t.Errorf("records changed (-before +after):\n%s", diff)
			}
			if _, err := s.Instance(ctx, big.sop); !errors.Is(err, ErrNotFound) {
				t.Errorf("aborted instance indexed: %v", err)
			}
		})
	}
}

func TestDiskThreshold(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{MinFreeBytes: 1 << 62})
	d := ds{sop: "1.2.826.0.1.3680043.10.999.1.1.6"}
	reads := 0
	r := readerFunc(func(p []byte) (int, error) { reads++; return 0, io.EOF })
	if _, err := s.Ingest(ctx, d.incoming(), r); !errors.Is(err, ErrOutOfResources) {
		t.Fatalf("Ingest error %v, want ErrOutOfResources", err)
	}
	if reads != 0 {
		t.Errorf("the data set was read %d times before refusing", reads)
	}
	assertNothingStored(t, s)
	if err := s.Writable(ctx); !errors.Is(err, ErrOutOfResources) {
		t.Errorf("Writable = %v, want ErrOutOfResources", err)
	}

	// A modest threshold passes.
	s2 := openTest(t, Config{MinFreeBytes: 1 << 20})
	if _, err := s2.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); err != nil {
		t.Fatalf("Ingest with 1 MiB threshold: %v", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	d := ds{sop: "1.2.826.0.1.3680043.10.999.1.1.7", pixels: 10000}
	size := int64(len(d.bytes()))
	for _, tt := range []struct {
		limit int64
		want  error
	}{{size - 1, ErrTooLarge}, {size, nil}, {0, nil}} {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			s := openTest(t, Config{MaxInstanceBytes: tt.limit})
			_, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				assertNothingStored(t, s)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DataDir: t.TempDir(), SegmentSize: testSegmentSize}
	s, err := Open(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, cfg, nil, nil); !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("second Open on the same directory: %v, want ErrDataDirInUse", err)
	}
	var want []Instance
	for i := range 5 {
		d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.2.%d", i), instanceNumber: fmt.Sprint(i + 1), fill: byte(i)}
		res, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.Instance)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	d := ds{sop: "1.2.826.0.1.3680043.10.999.2.99"}
	if _, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); !errors.Is(err, ErrClosed) {
		t.Errorf("Ingest after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Instance(ctx, want[0].SOPInstanceUID); !errors.Is(err, ErrClosed) {
		t.Errorf("Instance after Close: %v, want ErrClosed", err)
	}

	s, err = Open(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range want {
		got, err := s.Instance(ctx, w.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, got, cmpopts.IgnoreFields(Instance{}, "SHA256")); diff != "" {
			t.Errorf("after reopen (-before +after):\n%s", diff)
		}
		if b := readBlob(t, s, got.BlobKey); sha256Hex(b) != got.SHA256 {
			t.Errorf("blob %s does not hash to its SHA256", got.BlobKey)
		}
	}
	if n, _ := s.CountInstances(ctx); n != int64(len(want)) {
		t.Errorf("%d instances after reopen, want %d", n, len(want))
	}
}

// A record being written when the process died (here: its writer never
// finishes, and the store is closed under it) is not indexed at the next
// Open, which trims the segment at its end; a segment left holding nothing
// referenced is reclaimed.
func TestOpenTrimsUncommittedRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, Config{DataDir: dir})
	kept := ds{sop: "1.2.826.0.1.3680043.10.999.3.1", fill: 1}
	res, err := s.Ingest(ctx, kept.incoming(), bytes.NewReader(kept.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.blobs.Create(ctx, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte{0xAB}, 100<<10))
	s.Close() // w is never finished: its segment is left as a crash leaves it

	s = openTest(t, Config{DataDir: dir})
	if n, _ := s.CountInstances(ctx); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	if diff := cmp.Diff(map[string]bool{res.Instance.BlobKey: true}, committed(t, dir)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	// The segment ends where the committed record does.
	seg, off, n, _ := parseKey(res.Instance.BlobKey)
	fi, err := os.Stat(filepath.Join(dir, segmentsDirName, fmt.Sprintf("%016x%s", seg, segmentExt)))
	if err != nil || fi.Size() != off+n {
		t.Errorf("segment not trimmed to its last record (%d bytes): %v %v", off+n, fi.Size(), err)
	}
	if got := readBlob(t, s, res.Instance.BlobKey); !bytes.Equal(got, part10(t, kept.incoming(), kept.bytes())) {
		t.Error("the committed instance changed")
	}
}

// Once every record of a sealed segment is superseded, the segment file is
// deleted: at once when the last reference goes, and at Open for what a
// crash left.
func TestReclaimSegments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, Config{DataDir: dir, Duplicates: Replace})
	const n = 6 // × 300 KB: more than one 1 MiB segment
	var first []Result
	for i := range n {
		d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.3.2.%d", i), pixels: 300 << 10, fill: 1}
		r, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, r)
	}
	seg0, _, _, _ := parseKey(first[0].Instance.BlobKey)
	for i := range n {
		d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.3.2.%d", i), pixels: 300 << 10, fill: 2}
		if r, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); err != nil || r.Outcome != Replaced {
			t.Fatalf("replace %d: %v %v", i, r.Outcome, err)
		}
	}
	s.CountInstances(ctx) // flush the indexer
	if _, err := os.Stat(filepath.Join(dir, segmentsDirName, fmt.Sprintf("%016x%s", seg0, segmentExt))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("segment %d, all of whose records were replaced, still exists: %v", seg0, err)
	}
	for _, r := range first {
		if seg, _, _, _ := parseKey(r.Instance.BlobKey); seg == seg0 {
			if _, err := s.OpenBlob(ctx, r.Instance.BlobKey); !errors.Is(err, ErrNotFound) {
				t.Errorf("replaced blob %s still readable: %v", r.Instance.BlobKey, err)
			}
		}
	}
	states, err := s.index.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.ID == seg0 {
			t.Errorf("reclaimed segment %d still in the index: %+v", seg0, st)
		}
	}
	s.Close()

	// Every segment of the first round is dead now; Open reclaims those
	// the running store could not (they were still open then).
	s = openTest(t, Config{DataDir: dir})
	live := map[uint64]bool{}
	for i := range n {
		inst, err := s.Instance(ctx, fmt.Sprintf("1.2.826.0.1.3680043.10.999.3.2.%d", i))
		if err != nil {
			t.Fatal(err)
		}
		seg, _, _, _ := parseKey(inst.BlobKey)
		live[seg] = true
	}
	for _, id := range s.blobs.Segments() { // sealed ones; spares are new
		if !live[id] {
			t.Errorf("segment %d holds no current record but was not reclaimed", id)
		}
	}
}

func TestConcurrentIngest(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{})
	const workers, perWorker = 8, 10
	shared := ds{sop: "1.2.826.0.1.3680043.10.999.4.0"}
	var mu sync.Mutex
	outcomes := map[Outcome]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.4.%d.%d", w+1, i), pixels: 1000 + i}
				if i%2 == 0 {
					d = shared
				}
				res, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				outcomes[res.Outcome]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	want := map[Outcome]int{Stored: 1 + workers*perWorker/2, DuplicateSame: workers*perWorker/2 - 1}
	if diff := cmp.Diff(want, outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if n, _ := s.CountInstances(ctx); n != int64(want[Stored]) {
		t.Errorf("%d instances, want %d", n, want[Stored])
	}
	if keys := committed(t, s.cfg.DataDir); len(keys) != want[Stored] {
		t.Errorf("%d records, want %d", len(keys), want[Stored])
	}
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := Open(ctx, Config{DataDir: t.TempDir(), SegmentSize: testSegmentSize}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := ds{sop: "1.2.826.0.1.3680043.10.999.5.1"}
	s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
	s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
	s.Ingest(ctx, ds{sop: "1.2.3"}.incoming(), bytes.NewReader(d.bytes()))
	s.CountInstances(ctx) // the index transaction has run

	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				got[name] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[name+"_count"] = float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				got[name] = m.Gauge.GetValue()
			}
		}
	}
	blob := float64(len(part10(t, d.incoming(), d.bytes())))
	for name, want := range map[string]float64{
		"radgate_store_instances_total{outcome=stored}":         1,
		"radgate_store_instances_total{outcome=duplicate_same}": 1,
		"radgate_store_errors_total{reason=invalid_dataset}":    1,
		"radgate_store_bytes_total":                             blob,
		"radgate_store_ingest_seconds_count":                    3,
		"radgate_store_fsync_seconds_count":                     1, // the one record committed
		"radgate_store_index_commit_seconds_count":              1,
		"radgate_store_index_pending":                           0,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if _, err := Open(ctx, Config{DataDir: t.TempDir(), SegmentSize: testSegmentSize}, nil, reg); err == nil {
		t.Error("a second Store registered on the same registry")
	}
}

func TestParseDuplicatePolicy(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    DuplicatePolicy
		wantErr bool
	}{
		{"", KeepFirst, false}, {"keep-first", KeepFirst, false}, {"replace", Replace, false},
		{"reject", Reject, false}, {"Replace", 0, true}, {"drop", 0, true},
	} {
		got, err := ParseDuplicatePolicy(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseDuplicatePolicy(%q) = %v, %v", tt.in, got, err)
		}
		if err == nil && tt.in != "" && got.String() != tt.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestScanTagsSorted(t *testing.T) {
	if !slices.IsSorted(scanTags) {
		t.Error("scanTags must be in ascending order (dcm.Scanner would copy and sort them on every call)")
	}
}

func TestMetaAETitle(t *testing.T) {
	for in, want := range map[string]string{
		"STORESCU": "STORESCU", " PACS ": "PACS", "": "", "A\\B": "", "TOO_LONG_AE_TITLE_X": "", "tab\there": "",
	} {
		if got := metaAETitle(in); got != want {
			t.Errorf("metaAETitle(%q) = %q, want %q", in, got, want)
		}
	}
}

// failCommit makes every record's Commit fail, as a broken disk would.
// (A real disk cannot be made to fail an fdatasync on demand.)
type failCommit struct{ *Log }

func (f failCommit) Create(ctx context.Context, meta []byte) (BlobWriter, error) {
	w, err := f.Log.Create(ctx, meta)
	return failingWriter{w}, err
}

type failingWriter struct{ BlobWriter }

func (w failingWriter) Commit(context.Context, uint64) (string, Mark, error) {
	return "", Mark{}, errors.New("injected commit failure")
}

func TestCommitFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lg, err := OpenLog(dir, testSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := OpenSQLiteIndex(ctx, filepath.Join(dir, indexName))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{DataDir: dir}, failCommit{lg}, idx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := ds{sop: "1.2.826.0.1.3680043.10.999.5.1"}
	if _, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); err == nil {
		t.Fatal("Ingest succeeded although the record could not be committed")
	}
	if _, err := s.Instance(ctx, d.sop); !errors.Is(err, ErrNotFound) {
		t.Fatalf("instance indexed although never durable: %v", err)
	}
	if keys := committed(t, dir); len(keys) != 0 {
		t.Errorf("records committed: %v", keys)
	}
}

// The log alone is enough to rebuild the index: a power loss may roll
// back the index's last transactions (synchronous=NORMAL), here all of
// them. Replay restores every instance, a replaced one at its latest
// content, with the same records.
func TestReplayRebuildsLostIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, Config{DataDir: dir, Duplicates: Replace})
	sent, before := ingestReplacing(t, s, "1.2.826.0.1.3680043.10.999.6.", 8, 100<<10, 2, 100<<10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{indexName, indexName + "-wal", indexName + "-shm"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}

	s = openTest(t, Config{DataDir: dir})
	if n, _ := s.CountInstances(ctx); n != 8 {
		t.Errorf("%d instances after replay, want 8", n)
	}
	for i, want := range before {
		got, err := s.Instance(ctx, want.SOPInstanceUID)
		if err != nil {
			t.Fatalf("instance %d lost: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("instance %d after replay (-before +after):\n%s", i, diff)
		}
	}
	if got, _ := s.Instance(ctx, sent[2].sop); !bytes.Equal(readBlob(t, s, got.BlobKey), part10(t, sent[8].incoming(), sent[8].bytes())) {
		t.Error("the replaced instance came back with its old content")
	}
	// Replay also recounted the segments: another reopen replays nothing.
	states, err := s.index.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var live int64
	for _, st := range states {
		live += st.Live
	}
	if live != 8 {
		t.Errorf("segments count %d live records, want 8", live)
	}
	if next, _ := s.index.MaxSeq(ctx); next != uint64(len(sent)) {
		t.Errorf("MaxSeq %d, want %d", next, len(sent))
	}
}

func TestDescribe(t *testing.T) {
	d := ds{sop: "1.2.826.0.1.3680043.10.999.1.1.7"}
	part10 := func(sop string) []byte {
		var b bytes.Buffer
		if err := dcm.WriteFileMeta(&b, dcm.FileMeta{MediaStorageSOPClassUID: ctImageStorage, MediaStorageSOPInstanceUID: sop,
			TransferSyntaxUID: dcm.ExplicitVRLittleEndian}); err != nil {
			t.Fatal(err)
		}
		b.Write(d.bytes())
		return b.Bytes()
	}
	got, err := Describe(bytes.NewReader(part10(d.sop)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d.want(), got); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	if _, err := Describe(bytes.NewReader(part10("1.2.3.4"))); !errors.Is(err, ErrInvalidDataset) {
		t.Errorf("meta naming another instance: %v, want ErrInvalidDataset", err)
	}
	if _, err := Describe(strings.NewReader("not DICOM at all, not even close to it")); !errors.Is(err, dcm.ErrNotDICOM) {
		t.Errorf("text: %v, want dcm.ErrNotDICOM", err)
	}
}
