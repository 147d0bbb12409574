package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
)

// BenchmarkIngestSealed compares Ingest (a new ~530 KB CT slice each
// iteration, as BenchmarkIngest/new) and reading the blob back whole
// (OpenBlob, as WADO-RS does) without keys and with them: what AES-256-GCM
// sealing costs on the acknowledgement's path and on retrieval.
func BenchmarkIngestSealed(b *testing.B) {
	for _, mode := range []struct {
		name string
		keys func(b *testing.B) KeyProvider
	}{
		{"plain", func(*testing.B) KeyProvider { return nil }},
		{"sealed", func(b *testing.B) KeyProvider { return newTestKeys(b) }},
	} {
		b.Run("ingest/"+mode.name, func(b *testing.B) { benchSealed(b, mode.keys(b), false) })
		b.Run("read/"+mode.name, func(b *testing.B) { benchSealed(b, mode.keys(b), true) })
	}
}

// benchSealed ingests b.N instances (timed unless read), then, when read
// is set, times reading each back.
func benchSealed(b *testing.B, keys KeyProvider, read bool) {
	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: b.TempDir(), Keys: keys}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run := benchRuns.Add(1)
	d := ds{sop: "1.2.3", pixels: benchPixels}
	b.SetBytes(int64(len(d.bytes())))
	keysOut := make([]string, 0, b.N)
	if read {
		b.StopTimer()
	}
	for i := range b.N {
		d.sop = fmt.Sprintf("1.2.826.0.1.3680043.10.999.26.%d.%d.%d", os.Getpid(), run, i)
		res, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
		if err != nil {
			b.Fatal(err)
		}
		keysOut = append(keysOut, res.Instance.BlobKey)
	}
	if !read {
		return
	}
	buf := make([]byte, chunkSize)
	b.StartTimer()
	for _, key := range keysOut {
		rc, err := s.OpenBlob(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.CopyBuffer(io.Discard, rc, buf)
		rc.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
