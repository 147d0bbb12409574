package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	kf, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := GenerateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKeyFile over an existing file: %v, want fs.ErrExist", err)
	}
	first := kf.Current()
	dek := bytes.Repeat([]byte{9}, dekLen)
	wrapped, err := kf.Wrap(ctx, first, dek)
	if err != nil {
		t.Fatal(err)
	}
	second, err := kf.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	// Another handle on the file, rotating after this one: it appends to
	// what is on disk, so neither new KEK is lost.
	other, err := OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	third, err := other.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	reread, err := OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range reread.keks {
		ids = append(ids, k.ID)
	}
	if diff := cmp.Diff([]string{first, second, third}, ids); diff != "" {
		t.Errorf("KEKs in the file after two rotations (-want +got):\n%s", diff)
	}
	if reread.Current() != third {
		t.Errorf("current %q, want the newest %q", reread.Current(), third)
	}
	if got, err := reread.Unwrap(ctx, first, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Errorf("unwrap under the first KEK after rotations: %v", err)
	}
	if _, err := reread.Unwrap(ctx, second, wrapped); !errors.Is(err, ErrSealBroken) {
		t.Errorf("unwrap under another KEK: %v, want ErrSealBroken", err)
	}
	if _, err := reread.Unwrap(ctx, "NOSUCHKEY", wrapped); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unwrap under an unknown id: %v, want ErrUnknownKey", err)
	}
	if _, err := reread.Wrap(ctx, "NOSUCHKEY", dek); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("wrap under an unknown id: %v, want ErrUnknownKey", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("OpenKeyFile of a group-readable file: %v, want a refusal", err)
	}
}

func TestParseKeyFile(t *testing.T) {
	key := `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="` // 32 bytes
	doc := func(keys string) string { return `{"format":"radgate-keys/1","keys":[` + keys + `]}` }
	k := func(id, created, key string) string {
		return `{"id":"` + id + `","created":"` + created + `","key":` + key + `}`
	}
	const when = "2026-01-31T10:15:00Z"
	tests := []struct {
		name, in string
		err      string // "" : valid
	}{
		{"valid", doc(k("A", when, key) + "," + k("B", when, key)), ""},
		{"not JSON", "keys", "not a key file"},
		{"other format", `{"format":"radgate-keys/2","keys":[` + k("A", when, key) + `]}`, "format"},
		{"unknown field", `{"format":"radgate-keys/1","kek":1,"keys":[]}`, "unknown field"},
		{"trailing data", doc(k("A", when, key)) + "{}", "after the document"},
		{"no keys", doc(""), "no keys"},
		{"empty id", doc(k("", when, key)), "id must be"},
		{"id with a space", doc(k("A B", when, key)), "id must be"},
		{"id too long", doc(k(strings.Repeat("A", maxKeyIDLen+1), when, key)), "id must be"},
		{"duplicate id", doc(k("A", when, key) + "," + k("A", when, key)), "twice"},
		{"short key", doc(k("A", when, `"AAAA"`)), "want 32"},
		{"no creation time", doc(k("A", "0001-01-01T00:00:00Z", key)), "creation time"},
	}
	for _, tc := range tests {
		_, err := parseKeyFile([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
}

// A marker that does not parse keeps the store from opening: its data
// directory's sealing state is unknown.
func TestParseSealMarker(t *testing.T) {
	tests := []struct {
		name, in string
		err      string
	}{
		{"valid", `{"format":"radgate-seal/1","plaintext_before_segment":3,"kek":"A","check":"AAAA"}`, ""},
		{"other format", `{"format":"radgate-seal/9","kek":"A","check":"AAAA"}`, "format"},
		{"no key id", `{"format":"radgate-seal/1","kek":"","check":"AAAA"}`, "key id"},
		{"no check", `{"format":"radgate-seal/1","kek":"A"}`, "check value"},
		{"unknown field", `{"format":"radgate-seal/1","kek":"A","check":"AAAA","x":1}`, "unknown field"},
		{"truncated", `{"format":"radgate-seal/1"`, "not a seal marker"},
	}
	for _, tc := range tests {
		_, err := parseSealMarker([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, sealMarkerName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{DataDir: dir, SegmentSize: testSegmentSize}, nil, nil); err == nil {
		t.Error("Open with a damaged seal marker succeeded")
	}
}

// TestKeyFileReload: a running store's KeyFile takes a rotation another
// process made, and seals the next record under the new KEK; a file that
// lost a KEK in use, or was opened to others, is refused and the keys in
// use stay.
func TestKeyFileReload(t *testing.T) {
	kf := newTestKeys(t)
	dir := t.TempDir()
	s := openTest(t, Config{DataDir: dir, Keys: kf})
	first := kf.Current()
	if rotated, err := kf.Reload(); err != nil || rotated {
		t.Fatalf("Reload of an unchanged file: %v, %v", rotated, err)
	}
	before := ingestTest(t, s, ds{sop: testSeriesUID + ".1"})

	cli, err := OpenKeyFile(kf.path) // radgate keys rotate
	if err != nil {
		t.Fatal(err)
	}
	second, err := cli.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if rotated, err := kf.Reload(); err != nil || !rotated || kf.Current() != second {
		t.Fatalf("Reload after a rotation: %v, %v, current %q (want %q)", rotated, err, kf.Current(), second)
	}
	after := ingestTest(t, s, ds{sop: testSeriesUID + ".2"})
	if got := sealedHeaderOf(t, dir, before.BlobKey).kek; got != first {
		t.Errorf("the first record is sealed under %q, want %q", got, first)
	}
	if got := sealedHeaderOf(t, dir, after.BlobKey).kek; got != second {
		t.Errorf("the record after the reload is sealed under %q, want %q", got, second)
	}
	if b := readBlob(t, s, before.BlobKey); len(b) == 0 {
		t.Error("the record sealed under the first KEK no longer reads")
	}

	// The file loses the first KEK: refused, both KEKs stay in use.
	good, err := os.ReadFile(kf.path)
	if err != nil {
		t.Fatal(err)
	}
	only, err := encodeKeyFile(cli.keks[1:])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf.path, only, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kf.Reload(); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Reload of a file that lost a KEK: %v, want ErrUnknownKey", err)
	}
	if b := readBlob(t, s, before.BlobKey); len(b) == 0 || kf.Current() != second {
		t.Error("a refused reload changed the keys in use")
	}
	if err := os.WriteFile(kf.path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kf.path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kf.Reload(); err == nil {
		t.Error("Reload accepted a key file others may read")
	}
}
