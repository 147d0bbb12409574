package imaging

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: no input makes Load (or Apply on what it returns) panic; a
// loaded image has consistent sizes. Seeds: pydicom's small test files and
// synthetic streams; crashers found by fuzzing are under
// testdata/fuzz/FuzzLoad and run with every go test.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	for _, p := range files {
		if fi, err := os.Stat(p); err == nil && fi.Size() <= 64<<10 {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(part10(tsExplicitVRLittleEndian, nil, mono16(2, 2, 12, 11, 1, []uint16{1, 2, 3, 0xFFFF})...))
	f.Add(part10("1.2.840.10008.1.2.5", encapsulated([]byte{}, []byte{1, 2, 3, 4}), mono16(2, 2, 16, 15, 0, nil)[:11]...))
	r := Recipe{Size: [2]int{8, 8}, Resize: ResizeLetterbox, Channels: []Channel{{}, {Window: win(40, 80)}}}
	out := make([]float32, r.Len())
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Load(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(im.frames) != im.Frames || im.Frames < 1 {
			t.Fatalf("%d frames decoded, %d declared", len(im.frames), im.Frames)
		}
		for _, fr := range im.frames {
			if len(fr) != im.Rows*im.Cols {
				t.Fatalf("frame of %d values for %d×%d", len(fr), im.Rows, im.Cols)
			}
		}
		if err := r.Apply(im, 0, out); err != nil {
			t.Fatal(err)
		}
	})
}
