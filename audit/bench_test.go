package audit

import (
	"context"
	"log/slog"
	"testing"
)

// BenchmarkRecord is the cost of one audit record on the hot path
// (queued; group commit every 100 ms), with Flush at the end so the
// figure includes making them durable.
func BenchmarkRecord(b *testing.B) {
	tr, err := Open(b.TempDir(), Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	msg := sample(3)
	ctx := context.Background()
	for b.Loop() {
		if err := tr.Record(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := tr.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
