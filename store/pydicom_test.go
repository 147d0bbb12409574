package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/dcm"
)

// pydicomTestFiles is where Debian's python3-pydicom installs pydicom's
// sample files (pydicom 2.x, MIT licence; see dcm/testdata/PROVENANCE.md).
const pydicomTestFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// TestPydicomFiles ingests real files the way STOW-RS will: the file meta
// read with dcm.OpenPart10 declares the instance, the rest streams in.
// Expected values were read with pydicom 2.3.
func TestPydicomFiles(t *testing.T) {
	if _, err := os.Stat(pydicomTestFiles); err != nil {
		t.Skipf("pydicom sample files not installed (%v): apt-get install python3-pydicom", err)
	}
	type attrs struct {
		Modality              string
		Rows, Columns, Frames int
	}
	tests := []struct {
		file    string
		want    attrs
		wantErr error
	}{
		{"CT_small.dcm", attrs{"CT", 128, 128, 0}, nil},
		{"MR_small.dcm", attrs{"MR", 64, 64, 0}, nil},
		{"MR_small_implicit.dcm", attrs{"MR", 64, 64, 0}, nil},
		{"MR_small_bigendian.dcm", attrs{"MR", 64, 64, 0}, nil},
		{"image_dfl.dcm", attrs{"OT", 512, 512, 0}, nil}, // deflated
		{"JPEG2000.dcm", attrs{"NM", 1024, 256, 1}, nil}, // encapsulated
		{"SC_rgb_rle_2frame.dcm", attrs{"OT", 100, 100, 2}, nil},
		{"reportsi.dcm", attrs{"SR", 0, 0, 0}, nil},
		{"waveform_ecg.dcm", attrs{"ECG", 0, 0, 0}, nil},
		{"MR_truncated.dcm", attrs{}, ErrInvalidDataset},
		// Its file meta names another SOP instance than its data set.
		{"rtplan.dcm", attrs{}, ErrInvalidDataset},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(pydicomTestFiles, tt.file)
			raw, err := os.ReadFile(path)
			if os.IsNotExist(err) {
				t.Skipf("%s not installed", path)
			}
			if err != nil {
				t.Fatal(err)
			}
			meta, rest, err := dcm.OpenPart10(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			dataset, err := io.ReadAll(rest)
			if err != nil {
				t.Fatal(err)
			}
			s := openTest(t, Config{})
			in := Incoming{
				SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
				TransferSyntaxUID: meta.TransferSyntaxUID, CallingAE: meta.SourceApplicationEntityTitle, Source: "stow",
			}
			res, err := s.Ingest(ctx, in, bytes.NewReader(dataset))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Ingest: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				assertNothingStored(t, s)
				return
			}
			got := res.Instance
			if diff := cmp.Diff(tt.want, attrs{got.Modality, got.Rows, got.Columns, got.NumberOfFrames}); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
			if got.StudyInstanceUID == "" || got.SeriesInstanceUID == "" || got.SOPInstanceUID != in.SOPInstanceUID {
				t.Errorf("UIDs not indexed: %+v", got)
			}
			blob := readBlob(t, s, got.BlobKey)
			if !bytes.Equal(blob[got.DatasetOffset:], dataset) {
				t.Error("stored data set differs from the file's")
			}
			if keys := committed(t, s.cfg.DataDir); len(keys) != 1 || !keys[got.BlobKey] {
				t.Errorf("records in the log: %v, want only %s", keys, got.BlobKey)
			}
		})
	}
}
