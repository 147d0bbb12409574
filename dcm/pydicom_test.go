package dcm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// pydicomData is where Debian's python3-pydicom keeps the sample files
// listed in testdata/pydicom_uids.golden (see testdata/PROVENANCE.md).
const pydicomData = "/usr/lib/python3/dist-packages/pydicom/data"

// pydicomExpectErr lists files pydicom reads but radgate must reject.
var pydicomExpectErr = map[string]error{
	// Pixel data cut short; pydicom defers reading it, DCMTK rejects both.
	"test_files/MR_truncated.dcm":     ErrMalformed,
	"test_files/rtplan_truncated.dcm": ErrMalformed,
	// A data set shifted by one stray leading byte: pydicom's forced read
	// finds no elements, DCMTK rejects it.
	"test_files/no_meta.dcm": ErrNotDICOM,
	// The last directory record item declares 248 bytes where 224 remain
	// in its defined-length sequence (pydicom removed two offset elements
	// without fixing the item length). pydicom and DCMTK read on; an item
	// overrunning its container is ErrMalformed for radgate (PS3.5 7.5.1).
	"test_files/dicomdirtests/DICOMDIR-nooffset": ErrMalformed,
}

type goldenFile struct {
	path, status, ts, class, instance, rows string
}

func readGolden(t *testing.T) []goldenFile {
	t.Helper()
	if _, err := os.Stat(pydicomData); err != nil {
		t.Skipf("pydicom sample files not installed at %s (Debian package python3-pydicom): %v", pydicomData, err)
	}
	b, err := os.ReadFile("testdata/pydicom_uids.golden")
	if err != nil {
		t.Fatal(err)
	}
	var out []goldenFile
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			t.Fatalf("bad golden line %q", line)
		}
		out = append(out, goldenFile{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	return out
}

var corpusWant = []Tag{SOPClassUID, SOPInstanceUID, Rows, Columns, PatientID, StudyInstanceUID, SeriesInstanceUID, Modality, NumberOfFrames}

// openAndScan runs OpenPart10 and ScanDataset over r.
func openAndScan(r io.Reader) (FileMeta, Attributes, error) {
	meta, rest, err := OpenPart10(r)
	if err != nil {
		return meta, nil, err
	}
	ts, ok := LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return meta, nil, fmt.Errorf("unknown transfer syntax %q", meta.TransferSyntaxUID)
	}
	attrs, err := ScanDataset(rest, ts, corpusWant)
	return meta, attrs, err
}

func TestPydicomFiles(t *testing.T) {
	for _, g := range readGolden(t) {
		t.Run(g.path, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(pydicomData, g.path))
			if err != nil {
				t.Fatal(err)
			}
			meta, attrs, err := openAndScan(bytes.NewReader(data))
			wantErr := pydicomExpectErr[g.path]
			if g.status == "error" {
				wantErr = ErrNotDICOM
			}
			if wantErr != nil {
				if !errors.Is(err, wantErr) {
					t.Fatalf("err = %v, want %v", err, wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("pydicom reads it (%s), radgate: %v", g.status, err)
				}
				got := []string{attrs[SOPClassUID], attrs[SOPInstanceUID], attrs[Rows]}
				want := []string{g.class, g.instance, g.rows}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("class, instance, rows (-pydicom +radgate):\n%s", diff)
				}
				if g.ts != "" && meta.TransferSyntaxUID != g.ts {
					t.Errorf("transfer syntax %q, pydicom %q", meta.TransferSyntaxUID, g.ts)
				}
				if meta.MediaStorageSOPInstanceUID != "" && attrs[SOPInstanceUID] != "" && meta.MediaStorageSOPInstanceUID != attrs[SOPInstanceUID] {
					// Several samples disagree with themselves; pydicom
					// reports the data set's value, as does radgate.
					t.Logf("sample's meta SOP instance %q differs from its data set's %q", meta.MediaStorageSOPInstanceUID, attrs[SOPInstanceUID])
				}
			}

			// Same answer one byte at a time and through a caller's bufio.Reader.
			for name, r := range map[string]io.Reader{
				"one byte": iotest.OneByteReader(bytes.NewReader(data)),
				"bufio":    bufio.NewReaderSize(bytes.NewReader(data), 1<<20),
			} {
				meta2, attrs2, err2 := openAndScan(r)
				if (err == nil) != (err2 == nil) {
					t.Errorf("%s: err = %v, whole read err = %v", name, err2, err)
				}
				if diff := cmp.Diff(meta, meta2); diff != "" {
					t.Errorf("%s: meta (-whole +%s):\n%s", name, name, diff)
				}
				if diff := cmp.Diff(attrs, attrs2); diff != "" {
					t.Errorf("%s: attributes (-whole +%s):\n%s", name, name, diff)
				}
			}

			// Cut short: an error inside the last element, and never a
			// panic or hang anywhere.
			if err != nil || meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian {
				// Deflated samples carry bytes after the deflate stream.
				return
			}
			for _, n := range []int{len(data) - 1, len(data) - 3} {
				if _, _, err := openAndScan(bytes.NewReader(data[:n])); err == nil {
					t.Errorf("cut to %d of %d bytes: no error", n, len(data))
				}
			}
			for k := 1; k < 16; k++ {
				openAndScan(bytes.NewReader(data[:len(data)*k/16]))
			}
		})
	}
}

// TestPydicomFilesTruncatedEverywhere cuts small files at every offset.
func TestPydicomFilesTruncatedEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	for _, g := range readGolden(t) {
		data, err := os.ReadFile(filepath.Join(pydicomData, g.path))
		if err != nil {
			t.Fatal(err)
		}
		// Every offset in the first 1 KiB (meta and header elements),
		// then every 61st byte.
		for n := 0; n < len(data); n++ {
			if n > 1024 {
				n += 60
			}
			openAndScan(bytes.NewReader(data[:min(n, len(data))]))
		}
	}
}
