package codec

import (
	"errors"
	"testing"
)

// TestFuzzRegressions keeps every input the fuzz targets found crashing,
// by what it broke.
func TestFuzzRegressions(t *testing.T) {
	gray := Params{Rows: 17, Cols: 23, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16}
	for _, c := range []struct {
		name string
		ts   string
		data string
		p    Params
	}{
		// FuzzJPEG: a DRI segment one byte long was read as two.
		{"jpeg DRI segment too short", tsJPEGBaseline, "\xff\xd8\xff0\x00100000000000000000000000000000000000000000000000\xff\xdd\x00\x030", gray},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decode(c.ts, []byte(c.data), c.p); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want ErrCorrupt, got %v", err)
			}
		})
	}
}
