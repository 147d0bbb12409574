package dcm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// seedFiles returns the first 4 KB of the pydicom sample files, if
// installed (see testdata/PROVENANCE.md).
func seedFiles(f *testing.F) [][]byte {
	var out [][]byte
	paths, _ := filepath.Glob(filepath.Join(pydicomData, "test_files", "*.dcm"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		out = append(out, b[:min(len(b), 4096)])
	}
	return out
}

func FuzzOpenPart10(f *testing.F) {
	for _, e := range []testEnc{tExplicit, tImplicit, tBig} {
		f.Add(part10(f, testMeta, basicDataSet(e)))
		f.Add(basicDataSet(e))
	}
	f.Add(part10(f, testMeta, nil)[128:])
	f.Add(part10(f, testMeta, nil)[132:])
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, rest, err := OpenPart10(bytes.NewReader(data))
		meta1, rest1, err1 := OpenPart10(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err1 == nil) {
			t.Fatalf("err %v, one byte at a time %v", err, err1)
		}
		if err != nil {
			if !errors.Is(err, ErrNotDICOM) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v wraps neither ErrNotDICOM nor ErrMalformed", err)
			}
			return
		}
		if diff := cmp.Diff(meta, meta1); diff != "" {
			t.Fatalf("meta differs one byte at a time:\n%s", diff)
		}
		// The returned reader yields exactly the tail of the input.
		tail, err := io.ReadAll(rest)
		if err != nil {
			t.Fatal(err)
		}
		tail1, _ := io.ReadAll(rest1)
		if !bytes.Equal(tail, tail1) || !bytes.HasSuffix(data, tail) {
			t.Fatalf("rest is not a suffix of the input")
		}
		ts, ok := LookupTransferSyntax(meta.TransferSyntaxUID)
		if !ok {
			ts, _ = LookupTransferSyntax(ExplicitVRLittleEndian)
		}
		ScanDataset(bytes.NewReader(tail), ts, corpusWant)
	})
}

func FuzzScanDataset(f *testing.F) {
	for i, e := range []testEnc{tExplicit, tImplicit, tBig} {
		f.Add(basicDataSet(e), uint8(i))
		f.Add(deepNesting(e, 3), uint8(i))
		f.Add(cat(e.seq(0x00081140, e.item(e.str(0x00081150, "UI", "1.2")), e.itemDef(e.us(Rows, 1))), e.us(Rows, 1)), uint8(i))
	}
	f.Add(cat(tExplicit.str(SOPInstanceUID, "UI", "1.2"), tExplicit.encapsulated(nil, []byte{1, 2})), uint8(4))
	f.Add(deflate(f, basicDataSet(tExplicit)), uint8(2))
	for _, b := range seedFiles(f) {
		if meta, rest, err := OpenPart10(bytes.NewReader(b)); err == nil {
			tail, _ := io.ReadAll(rest)
			for i, ts := range TransferSyntaxes() {
				if ts.UID == meta.TransferSyntaxUID {
					f.Add(tail, uint8(i))
				}
			}
		}
	}
	all := TransferSyntaxes()
	f.Fuzz(func(t *testing.T, data []byte, tsIndex uint8) {
		ts := all[int(tsIndex)%len(all)]
		want := []Tag{SOPInstanceUID, Rows, PatientID, 0x00280002, 0x00281052, 0x00290010}
		attrs, err := ScanDataset(bytes.NewReader(data), ts, want)
		var sc Scanner
		attrs1, err1 := sc.Scan(iotest.OneByteReader(bytes.NewReader(data)), ts, want)
		if (err == nil) != (err1 == nil) {
			t.Fatalf("err %v, one byte at a time %v", err, err1)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if diff := cmp.Diff(attrs, attrs1); diff != "" {
			t.Fatalf("attributes differ one byte at a time:\n%s", diff)
		}
		for tag, v := range attrs {
			if len(v) > MaxValueLength*4 {
				t.Fatalf("%v: %d-byte value", tag, len(v))
			}
		}
	})
}
