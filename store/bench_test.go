package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// benchPixels makes a 512×512 16-bit CT slice: a ~530 KB instance.
const benchPixels = 512 * 512 * 2

// BenchmarkIngest measures Ingest on a new instance each iteration: the
// record written, its headers read back, one fdatasync (what the sender
// waits for); the indexer's digest and transaction run alongside.
//
//   - new: a new instance each time.
//   - duplicate: the same instance again (DuplicateSame: no fsync).
//   - parallel: 4×GOMAXPROCS concurrent ingests (ns/op is then wall time
//     per instance, i.e. 1/throughput).
func BenchmarkIngest(b *testing.B) {
	b.Run("new", func(b *testing.B) { benchIngest(b, b.TempDir(), true) })
	b.Run("duplicate", func(b *testing.B) { benchIngest(b, b.TempDir(), false) })
	b.Run("parallel", benchIngestParallel)
}

// benchIngestParallel is many associations storing at once into a warm
// store: each writes its own segment, fdatasyncs overlap, and the indexer
// batches what they acknowledged.
func benchIngestParallel(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run := benchRuns.Add(1)
	var seq atomic.Int64
	b.SetParallelism(4) // goroutines per GOMAXPROCS
	b.SetBytes(int64(len(ds{sop: "1.2.3", pixels: benchPixels}.bytes())))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.6.%d.%d.%d", os.Getpid(), run, seq.Add(1)), pixels: benchPixels}
			if _, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchIngest(b *testing.B, dir string, unique bool) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := Open(ctx, Config{DataDir: dir}, nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// The UID has a fixed-width counter, rewritten in place per iteration.
	prefix := fmt.Sprintf("1.2.826.0.1.3680043.10.999.8.%d.%d.", os.Getpid(), benchRuns.Add(1))
	d := ds{sop: prefix + fmt.Sprintf("1%011d", 0), pixels: benchPixels}
	data, in := d.bytes(), d.incoming()
	at := bytes.Index(data, []byte(d.sop)) + len(prefix)
	uids := make([]string, 0, b.N)
	for i := range b.N {
		if unique {
			uids = append(uids, prefix+fmt.Sprintf("1%011d", i+1))
		}
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		if unique {
			copy(data[at:], uids[i][len(prefix):])
			in.SOPInstanceUID = uids[i]
		}
		if _, err := s.Ingest(ctx, in, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Where the time goes: the record's fdatasync, and the index
	// transactions (off the acknowledgement's path), per instance.
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			switch mf.GetName() {
			case "radgate_store_fsync_seconds":
				b.ReportMetric(h.GetSampleSum()*1e3/float64(b.N), "fsync-ms/op")
				b.ReportMetric(float64(h.GetSampleCount())/float64(b.N), "fsyncs/op")
			case "radgate_store_index_commit_seconds":
				b.ReportMetric(h.GetSampleSum()*1e3/float64(b.N), "commit-ms/op")
			}
		}
	}
}

var benchRuns atomic.Int64

// BenchmarkPurge measures purging a settled study of 20 CT slices (~10 MB)
// sharing its segment with another study's instance, so that its records
// are erased (marked, made durable, punched out, made durable) rather than
// only deleted with their segment: one op is one study.
func BenchmarkPurge(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range b.N {
		b.StopTimer()
		study := fmt.Sprintf("1.2.826.0.1.3680043.10.999.30.%d", i)
		var last Instance
		for j := range 20 {
			d := ds{sop: fmt.Sprintf("%s.1.%d", study, j), study: study, series: study + ".1", pixels: benchPixels}
			r, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
			if err != nil {
				b.Fatal(err)
			}
			last = r.Instance
		}
		other := ds{sop: study + ".9", study: study + ".9", series: study + ".9.1"}
		if _, err := s.Ingest(ctx, other.incoming(), bytes.NewReader(other.bytes())); err != nil {
			b.Fatal(err)
		}
		if _, err := s.CountInstances(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Work().Evaluate(ctx, study, last.Seq, "unmatched", nil, Effects{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if ins, err := s.Purge(ctx, study); err != nil || len(ins) != 20 {
			b.Fatalf("Purge: %d, %v", len(ins), err)
		}
	}
}
