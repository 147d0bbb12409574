package store

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzWalkSegment feeds arbitrary segment files (a damaged disk, a torn
// write) to the walk that replay and LogRecords share: it must not panic,
// must end within the file, and every record it returns must lie inside
// the part it calls valid and be readable whole.
func FuzzWalkSegment(f *testing.F) {
	// Seeds: a real segment with an erased record, a record, a tombstone
	// and a torn tail.
	l, err := OpenLog(f.TempDir(), testSegmentSize)
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	w, _ := l.Create(ctx, []byte(`{"Source":"erased"}`))
	id := w.(*logWriter).seg.id
	w.Write(bytes.Repeat([]byte("PHI"), 2000))
	erased, _, err := w.Commit(ctx, 1)
	if err != nil {
		f.Fatal(err)
	}
	w.Close()
	w, _ = l.Create(ctx, []byte(`{"Source":"test"}`))
	w.Write(bytes.Repeat([]byte("DICM"), 3000))
	if _, _, err := w.Commit(ctx, 2); err != nil {
		f.Fatal(err)
	}
	w.Close()
	if err := l.Erase(ctx, []string{erased}); err != nil {
		f.Fatal(err)
	}
	w, _ = l.Create(ctx, []byte(`{}`))
	w.Write([]byte("aborted"))
	w.Close()
	w, _ = l.Create(ctx, []byte(`{}`))
	w.Write(bytes.Repeat([]byte{7}, 5000)) // never committed
	w.(*logWriter).end()
	seg, err := os.ReadFile(l.path(id))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg[:min(len(seg), 32<<10)])
	f.Add(seg[:segHeaderLen+recHeaderLen+40])
	f.Add([]byte(segMagic))

	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "seg")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		var ends []int64
		end, size, err := walkSegment(file, id, 0, func(r Recovered, rd io.Reader) error {
			n, err := io.Copy(io.Discard, rd)
			if err != nil || n != r.Size {
				t.Fatalf("record %s: read %d of %d: %v", r.Key, n, r.Size, err)
			}
			if _, _, _, ok := parseKey(r.Key); !ok {
				t.Fatalf("record key %q does not parse", r.Key)
			}
			ends = append(ends, r.Mark.Offset)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if end < 0 || end > size || size != int64(len(data)) {
			t.Fatalf("end %d, size %d, file %d", end, size, len(data))
		}
		for _, e := range ends {
			if e > end {
				t.Fatalf("a record ends at %d, past the valid end %d", e, end)
			}
		}
	})
}

// The seed segment walks as written: one committed record, then the
// tombstone is skipped, then the uncommitted record ends the segment.
func TestWalkSegmentSeed(t *testing.T) {
	l, err := OpenLog(t.TempDir(), testSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	var keys []string
	var id uint64
	for i, commit := range []bool{true, false, true, false} {
		w, err := l.Create(ctx, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		id = w.(*logWriter).seg.id
		w.Write(bytes.Repeat([]byte{byte(i)}, 1000*(i+1)))
		if commit {
			k, _, err := w.Commit(ctx, uint64(i+1))
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		if i < 3 {
			w.Close()
		} else {
			w.(*logWriter).end() // left as a crash leaves it
		}
	}
	file, err := os.Open(l.path(id))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var got []string
	end, _, err := walkSegment(file, id, 0, func(r Recovered, rd io.Reader) error {
		b, _ := io.ReadAll(rd)
		if want := bytes.Repeat([]byte{byte(r.Seq - 1)}, int(1000*r.Seq)); !bytes.Equal(b, want) {
			t.Errorf("record %d: wrong data", r.Seq)
		}
		got = append(got, r.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != keys[0] || got[1] != keys[1] {
		t.Errorf("walk found %v, want %v", got, keys)
	}
	_, off, n, _ := parseKey(keys[1])
	if end != off+n {
		t.Errorf("segment ends at %d, want after the last committed record, %d", end, off+n)
	}
}
