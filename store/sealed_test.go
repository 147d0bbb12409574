package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newTestKeys makes a key file in a fresh folder.
func newTestKeys(t testing.TB) *KeyFile {
	t.Helper()
	kf, err := GenerateKeyFile(filepath.Join(t.TempDir(), "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

// segmentBytes is every segment file under dataDir, concatenated: what a
// stolen disk shows.
func segmentBytes(t testing.TB, dataDir string) []byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dataDir, segmentsDirName, "*"+segmentExt))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no segment files (%v)", err)
	}
	var all []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func segmentPath(dataDir, key string) string {
	id, _, _, _ := parseKey(key)
	return filepath.Join(dataDir, segmentsDirName, fmt.Sprintf("%016x%s", id, segmentExt))
}

// sealedHeaderOf reads the sealed header of the record under key from disk.
func sealedHeaderOf(t testing.TB, dataDir, key string) sealedHeader {
	t.Helper()
	f, err := os.Open(segmentPath(dataDir, key))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, off, n, _ := parseKey(key)
	h, err := readSealedHeader(io.NewSectionReader(f, off, n))
	if err != nil {
		t.Fatalf("record %s: %v", key, err)
	}
	return h
}

// The instance comes back byte for byte through a sealed store, and
// neither the patient's name nor a run of its pixels is anywhere in the
// segment files; without keys both are (so the check can fail).
func TestSealedRoundTrip(t *testing.T) {
	const name = "Sealtest^Patricia"
	pixelRun := bytes.Repeat([]byte{0x5A}, 64)
	for _, tc := range []struct {
		name   string
		keys   KeyProvider
		inSegs bool // name and pixels readable in the segments
	}{
		{"plaintext", nil, true},
		{"sealed", newTestKeys(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, Config{Keys: tc.keys})
			d := ds{sop: "1.2.826.0.1.3680043.10.999.20.1", patientName: name, pixels: 200 << 10, fill: 0x5A}
			res, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CountInstances(ctx); err != nil {
				t.Fatal(err)
			}
			want := part10(t, d.incoming(), d.bytes())
			got, err := s.Instance(ctx, d.sop)
			if err != nil {
				t.Fatal(err)
			}
			// The walk back through ReadAt found the attributes; size and
			// digest are of the plaintext.
			if got.PatientName != name || got.Size != int64(len(want)) || got.SHA256 != sha256Hex(want) {
				t.Errorf("indexed name %q size %d sha %s; want %q %d %s", got.PatientName, got.Size, got.SHA256, name, len(want), sha256Hex(want))
			}
			if b := readBlob(t, s, res.Instance.BlobKey); !bytes.Equal(b, want) {
				t.Errorf("blob differs from the Part 10 file (%d bytes, want %d)", len(b), len(want))
			}
			segs := segmentBytes(t, s.cfg.DataDir)
			if got := bytes.Contains(segs, []byte(name)); got != tc.inSegs {
				t.Errorf("patient name in the segment files: %v, want %v", got, tc.inSegs)
			}
			if got := bytes.Contains(segs, pixelRun); got != tc.inSegs {
				t.Errorf("pixel run in the segment files: %v, want %v", got, tc.inSegs)
			}
		})
	}
}

// A sealed data directory opens again with its key file, is refused
// without keys and with another key file; tools reading it without a Store
// follow the same rules.
func TestSealedRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := newTestKeys(t)
	cfg := Config{DataDir: dir, SegmentSize: testSegmentSize, Keys: keys}
	s, err := Open(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := ds{sop: "1.2.826.0.1.3680043.10.999.21.1", pixels: 100 << 10, fill: 3}
	res, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := part10(t, d.incoming(), d.bytes())

	reread, err := OpenKeyFile(keys.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys KeyProvider
		want error // nil: opens and reads the instance back
	}{
		{"same key file", reread, nil},
		{"no keys", nil, ErrKeysRequired},
		{"another key file", newTestKeys(t), ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, Config{DataDir: dir, SegmentSize: testSegmentSize, Keys: tc.keys}, nil, nil)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Errorf("Open: %v, want %v", err, tc.want)
				}
				if err == nil {
					s.Close()
				}
			} else {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				if b := readBlob(t, s, res.Instance.BlobKey); !bytes.Equal(b, want) {
					t.Error("blob differs after reopening")
				}
			}
			rc, err := OpenBlobFile(dir, res.Instance.BlobKey, tc.keys)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Errorf("OpenBlobFile: %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenBlobFile: %v", err)
			}
			defer rc.Close()
			if b, err := io.ReadAll(rc); err != nil || !bytes.Equal(b, want) {
				t.Errorf("OpenBlobFile: %d bytes, %v", len(b), err)
			}
		})
	}
}

// After a rotation new records are sealed under the new KEK; records of
// the old one stay readable, through this KeyFile and a fresh read of it.
func TestSealedRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := newTestKeys(t)
	old := keys.Current()
	s := openTest(t, Config{DataDir: dir, Keys: keys})
	var sent []ds
	var recs []Instance
	ingest := func(i int) {
		d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.22.%d", i), pixels: 70 << 10, fill: byte(i)}
		res, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
		if err != nil {
			t.Fatal(err)
		}
		sent, recs = append(sent, d), append(recs, res.Instance)
	}
	ingest(1)
	id, err := keys.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if id == old || keys.Current() != id {
		t.Fatalf("Rotate gave %q (current %q), old %q", id, keys.Current(), old)
	}
	ingest(2)
	if got := []string{sealedHeaderOf(t, dir, recs[0].BlobKey).kek, sealedHeaderOf(t, dir, recs[1].BlobKey).kek}; !cmp.Equal(got, []string{old, id}) {
		t.Errorf("records sealed under %v, want [%s %s]", got, old, id)
	}
	s.Close()
	reread, err := OpenKeyFile(keys.path)
	if err != nil {
		t.Fatal(err)
	}
	s = openTest(t, Config{DataDir: dir, Keys: reread})
	for i, d := range sent {
		if b := readBlob(t, s, recs[i].BlobKey); !bytes.Equal(b, part10(t, d.incoming(), d.bytes())) {
			t.Errorf("record %d differs after rotation", i)
		}
	}
}

// Records written before keys were configured stay readable (their
// segments predate the seal marker); new ones are sealed; the directory
// is then refused without keys.
func TestSealedAfterPlaintext(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	plain := ds{sop: "1.2.826.0.1.3680043.10.999.23.1", patientName: "Before^Sealing", fill: 1}
	sealed := ds{sop: "1.2.826.0.1.3680043.10.999.23.2", patientName: "After^Sealing", fill: 2}
	s := openTest(t, Config{DataDir: dir})
	rp, err := s.Ingest(ctx, plain.incoming(), bytes.NewReader(plain.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	keys := newTestKeys(t)
	s = openTest(t, Config{DataDir: dir, Keys: keys})
	rs, err := s.Ingest(ctx, sealed.incoming(), bytes.NewReader(sealed.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d   ds
		key string
	}{{plain, rp.Instance.BlobKey}, {sealed, rs.Instance.BlobKey}} {
		if b := readBlob(t, s, c.key); !bytes.Equal(b, part10(t, c.d.incoming(), c.d.bytes())) {
			t.Errorf("%s: blob differs", c.d.sop)
		}
	}
	segs := segmentBytes(t, dir)
	if !bytes.Contains(segs, []byte(plain.patientName)) || bytes.Contains(segs, []byte(sealed.patientName)) {
		t.Error("want the earlier record in plaintext and the later one sealed")
	}
	s.Close()
	if _, err := Open(ctx, Config{DataDir: dir, SegmentSize: testSegmentSize}, nil, nil); !errors.Is(err, ErrKeysRequired) {
		t.Errorf("Open without keys: %v, want ErrKeysRequired", err)
	}
}

// tamperEnv is a sealed store holding two multi-chunk records, a and b.
type tamperEnv struct {
	t    *testing.T
	dir  string
	keys *KeyFile
	s    *Store
	a, b Instance
	hdr  int64 // a's sealed header length
}

func newTamperEnv(t *testing.T) *tamperEnv {
	ctx := context.Background()
	e := &tamperEnv{t: t, dir: t.TempDir(), keys: newTestKeys(t)}
	e.s = openTest(t, Config{DataDir: e.dir, Keys: e.keys})
	for i, in := range []*Instance{&e.a, &e.b} {
		d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.24.%d", i), pixels: 200 << 10, fill: byte(0x40 + i)}
		res, err := e.s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes()))
		if err != nil {
			t.Fatal(err)
		}
		*in = res.Instance
	}
	e.hdr = int64(len(sealedHeaderOf(t, e.dir, e.a.BlobKey).raw))
	return e
}

// chunk is the offset in its segment file of chunk j of a's record.
func (e *tamperEnv) chunk(key string, j int64) int64 {
	_, off, _, _ := parseKey(key)
	return off + int64(len(sealedHeaderOf(e.t, e.dir, key).raw)) + j*(sealChunk+sealTag)
}

// at is the offset of byte i of a's record data.
func (e *tamperEnv) at(i int64) int64 {
	_, off, _, _ := parseKey(e.a.BlobKey)
	return off + i
}

func (e *tamperEnv) read(key string, at, n int64) []byte {
	f, err := os.Open(segmentPath(e.dir, key))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, at); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *tamperEnv) write(key string, at int64, b []byte) {
	f, err := os.OpenFile(segmentPath(e.dir, key), os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		e.t.Fatal(err)
	}
}

func (e *tamperEnv) flip(at int64) {
	b := e.read(e.a.BlobKey, at, 1)
	b[0] ^= 1
	e.write(e.a.BlobKey, at, b)
}

// forgeCRC rewrites the log header of a's record to match its tampered
// data, as someone who can write the disk could: only the seal is left.
func (e *tamperEnv) forgeCRC() {
	f, err := os.OpenFile(segmentPath(e.dir, e.a.BlobKey), os.O_RDWR, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	_, dataAt, n, _ := parseKey(e.a.BlobKey)
	for off := int64(segHeaderLen); off < fi.Size(); {
		h := make([]byte, recHeaderLen)
		if _, err := f.ReadAt(h, off); err != nil || string(h[:4]) != recMagic {
			break
		}
		meta := make([]byte, binary.LittleEndian.Uint32(h[8:]))
		f.ReadAt(meta, off+recHeaderLen)
		data := off + recHeaderLen + int64(len(meta))
		if data == dataAt {
			c := crc32.New(castagnoli)
			io.Copy(c, io.NewSectionReader(f, data, n))
			binary.LittleEndian.PutUint32(h[12:], c.Sum32())
			binary.LittleEndian.PutUint32(h[32:], headerCRC(h, meta))
			if _, err := f.WriteAt(h, off); err != nil {
				e.t.Fatal(err)
			}
			return
		}
		off = data + int64(binary.LittleEndian.Uint64(h[24:]))
	}
	e.t.Fatal("record not found in its segment")
}

// Every change to a sealed record fails to read, with ErrSealBroken (or
// ErrUnknownKey where the KEK id changed), and never returns a byte of the
// tampered chunk. Which layer catches it is part of each case: the seal
// when the blob is opened (the log checks no CRC on that path); on replay
// the log's CRC-32C first, and the seal when the CRC was forged too.
func TestSealedTamper(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(e *tamperEnv) (key string)
		layer  string // "seal": OpenBlob fails; "log": replay drops the record; "seal on replay": replay cannot index it
		want   error
	}{
		{"byte in a chunk", func(e *tamperEnv) string { e.flip(e.chunk(e.a.BlobKey, 1) + 100); return e.a.BlobKey }, "seal", ErrSealBroken},
		{"byte in a tag", func(e *tamperEnv) string { e.flip(e.chunk(e.a.BlobKey, 1) - 1); return e.a.BlobKey }, "seal", ErrSealBroken},
		{"magic", func(e *tamperEnv) string { e.flip(e.at(0)); return e.a.BlobKey }, "seal", ErrSealBroken},
		{"version", func(e *tamperEnv) string { e.flip(e.at(4)); return e.a.BlobKey }, "seal", ErrSealBroken},
		{"KEK id", func(e *tamperEnv) string { e.flip(e.at(sealFixedLen)); return e.a.BlobKey }, "seal", ErrUnknownKey},
		{"wrapped data key", func(e *tamperEnv) string { e.flip(e.at(e.hdr - sealPrefixLen - 20)); return e.a.BlobKey }, "seal", ErrSealBroken},
		{"nonce prefix", func(e *tamperEnv) string { e.flip(e.at(e.hdr - 1)); return e.a.BlobKey }, "seal", ErrSealBroken},
		{"two chunks swapped", func(e *tamperEnv) string {
			c0, c1 := e.chunk(e.a.BlobKey, 0), e.chunk(e.a.BlobKey, 1)
			b0, b1 := e.read(e.a.BlobKey, c0, sealChunk+sealTag), e.read(e.a.BlobKey, c1, sealChunk+sealTag)
			e.write(e.a.BlobKey, c0, b1)
			e.write(e.a.BlobKey, c1, b0)
			return e.a.BlobKey
		}, "seal", ErrSealBroken},
		{"chunk of another record", func(e *tamperEnv) string {
			e.write(e.a.BlobKey, e.chunk(e.a.BlobKey, 1), e.read(e.b.BlobKey, e.chunk(e.b.BlobKey, 1), sealChunk+sealTag))
			return e.a.BlobKey
		}, "seal", ErrSealBroken},
		{"last chunk cut off", func(e *tamperEnv) string {
			id, off, n, _ := parseKey(e.a.BlobKey)
			last := (n - e.hdr) % (sealChunk + sealTag)
			if last == 0 {
				e.t.Fatal("the test record's last chunk is full; change its size")
			}
			return blobKey(id, off, n-last) // what is left ends on a chunk boundary
		}, "seal", ErrSealBroken},
		{"last chunk shortened", func(e *tamperEnv) string {
			id, off, n, _ := parseKey(e.a.BlobKey)
			return blobKey(id, off, n-5)
		}, "seal", ErrSealBroken},
		{"plaintext record where sealed ones belong", func(e *tamperEnv) string {
			w, err := e.s.blobs.(*sealedBlobs).Blobs.Create(context.Background(), []byte(`{}`))
			if err != nil {
				e.t.Fatal(err)
			}
			defer w.Close()
			w.Write(part10(e.t, ds{sop: "1.2.3"}.incoming(), ds{sop: "1.2.3"}.bytes()))
			key, _, err := w.Commit(context.Background(), 99)
			if err != nil {
				e.t.Fatal(err)
			}
			return key
		}, "seal", ErrSealBroken},
		{"byte in a chunk, replayed", func(e *tamperEnv) string { e.flip(e.chunk(e.a.BlobKey, 2) + 7); return e.a.BlobKey }, "log", nil},
		{"byte in a chunk, CRC forged, replayed", func(e *tamperEnv) string {
			e.flip(e.chunk(e.a.BlobKey, 2) + 7)
			e.forgeCRC()
			return e.a.BlobKey
		}, "seal on replay", ErrSealBroken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newTamperEnv(t)
			if tc.layer != "seal" {
				// Replay: the index is gone, so Open walks the log.
				e.s.Close()
				key := tc.tamper(e)
				for _, f := range []string{indexName, indexName + "-wal", indexName + "-shm"} {
					os.Remove(filepath.Join(e.dir, f))
				}
				e.s = openTest(t, Config{DataDir: e.dir, Keys: e.keys})
				if _, err := e.s.Instance(ctx, e.a.SOPInstanceUID); !errors.Is(err, ErrNotFound) {
					t.Errorf("tampered instance indexed on replay: %v", err)
				}
				list, err := LogRecords(e.dir)
				if err != nil {
					t.Fatal(err)
				}
				inLog := slices.Contains(list, key)
				if tc.layer == "log" {
					if inLog {
						t.Errorf("the log's CRC let the record through: records %v", list)
					}
					return
				}
				if !inLog {
					t.Fatalf("the forged CRC did not pass the log: records %v", list)
				}
				rc, err := OpenBlobFile(e.dir, key, e.keys)
				if err == nil {
					_, err = io.ReadAll(rc)
					rc.Close()
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("OpenBlobFile after replay: %v, want %v", err, tc.want)
				}
				return
			}
			key := tc.tamper(e)
			rc, err := e.s.OpenBlob(ctx, key)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("reading the tampered record: %v, want %v", err, tc.want)
			}
			// What came before the failure is whole authenticated chunks.
			if len(got)%sealChunk != 0 {
				t.Errorf("read %d bytes before the error: not whole chunks", len(got))
			}
			// The other record is untouched.
			if b := readBlob(t, e.s, e.b.BlobKey); int64(len(b)) != e.b.Size {
				t.Errorf("other record: %d bytes, want %d", len(b), e.b.Size)
			}
		})
	}
}

// The writer seals in chunks whatever sizes it is written in, reads back
// any range as plaintext, and Open and Replay return what was written; the
// sizes around a chunk boundary (empty, one short, exact, one over) are
// where the final chunk's rule matters.
func TestSealedWriterSizes(t *testing.T) {
	ctx := context.Background()
	dir, keys := t.TempDir(), newTestKeys(t)
	lg, err := OpenLog(dir, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	b := newSealedBlobs(lg, keys, 0)
	sizes := []int{0, 1, sealChunk - 1, sealChunk, sealChunk + 1, 3 * sealChunk, 3*sealChunk + 17}
	want := map[string][]byte{}
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i/sealChunk)
		}
		w, err := b.Create(ctx, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; { // odd-sized writes, as a network delivers them
			n := min(7919, len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		// Reads across chunk boundaries, backwards, and past the end.
		for _, r := range [][2]int{{0, size}, {size / 2, size}, {max(0, size-sealChunk-3), size}, {sealChunk - 2, sealChunk + 2}} {
			from, to := min(r[0], size), min(r[1], size)
			got := make([]byte, to-from)
			if n, err := w.ReadAt(got, int64(from)); n != len(got) || (err != nil && err != io.EOF) || !bytes.Equal(got, data[from:to]) {
				t.Errorf("size %d: ReadAt [%d,%d): %d bytes, %v, equal %v", size, from, to, n, err, bytes.Equal(got, data[from:to]))
			}
		}
		if n, err := w.ReadAt(make([]byte, 1), int64(size)); n != 0 || err != io.EOF {
			t.Errorf("size %d: ReadAt at the end: %d, %v; want 0, EOF", size, n, err)
		}
		key, _, err := w.Commit(ctx, uint64(size)+1)
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		_, _, n, _ := parseKey(key)
		chunks := max(1, (size+sealChunk-1)/sealChunk)
		if hdr := int64(len(sealedHeaderOf(t, dir, key).raw)); n != hdr+int64(size+chunks*sealTag) {
			t.Errorf("size %d: sealed record of %d bytes, want header %d + data + %d tags", size, n, hdr, chunks)
		}
		rc, err := b.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("size %d: Open read %d bytes, %v", size, len(got), err)
		}
		want[key] = data
	}
	// Replay walks the segments an Open finds.
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	if lg, err = OpenLog(dir, 4<<20); err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	got := map[string][]byte{}
	err = newSealedBlobs(lg, keys, 0).Replay(ctx, nil, func(r Recovered, rd io.Reader) error {
		data, err := io.ReadAll(rd)
		if err != nil || int64(len(data)) != r.Size {
			t.Errorf("replay %s: %d bytes of %d, %v", r.Key, len(data), r.Size, err)
		}
		got[r.Key] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replayed records (-want +got):\n%s", diff)
	}
}

// The crash cases with sealing on, in process: a sealed record left
// half written (as a crash leaves it) is trimmed at the next Open, and an
// index lost with a power failure is rebuilt from the sealed log alone,
// to the same rows (sizes and digests of the plaintext).
func TestSealedReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := newTestKeys(t)
	s := openTest(t, Config{DataDir: dir, Keys: keys, Duplicates: Replace})
	sent, before := ingestReplacing(t, s, "1.2.826.0.1.3680043.10.999.25.", 4, 150<<10, 1, 90<<10)
	w, err := s.blobs.Create(ctx, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte{0xAB}, 100<<10))
	s.Close() // w is never finished
	for _, f := range []string{indexName, indexName + "-wal", indexName + "-shm"} {
		os.Remove(filepath.Join(dir, f))
	}

	s = openTest(t, Config{DataDir: dir, Keys: keys})
	if n, _ := s.CountInstances(ctx); n != 4 {
		t.Errorf("%d instances after replay, want 4", n)
	}
	for i, want := range before {
		got, err := s.Instance(ctx, want.SOPInstanceUID)
		if err != nil {
			t.Fatalf("instance %d lost: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("instance %d after replay (-before +after):\n%s", i, diff)
		}
		if b := readBlob(t, s, got.BlobKey); sha256Hex(b) != got.SHA256 {
			t.Errorf("instance %d: blob does not hash to its SHA-256", i)
		}
	}
	if got, _ := s.Instance(ctx, sent[1].sop); !bytes.Equal(readBlob(t, s, got.BlobKey), part10(t, sent[4].incoming(), sent[4].bytes())) {
		t.Error("the replaced instance came back with its old content")
	}
}
