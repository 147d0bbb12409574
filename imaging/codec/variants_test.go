package codec

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestDCMTKEncodedVariants encodes pydicom's native images with dcmtk in
// the variants the pydicom files lack (all seven lossless predictors, a
// point transform, frames split over fragments, 8- and 12-bit grayscale
// DCT, JPEG-LS near-lossless and every interleave mode, RLE of signed CT)
// and compares the decoding with dcmtk's own decompression: byte for byte
// for lossless, within maxLossyError otherwise.
func TestDCMTKEncodedVariants(t *testing.T) {
	dir := pydicomDir(t)
	ct, mr := filepath.Join(dir, "CT_small.dcm"), filepath.Join(dir, "MR_small.dcm")
	// A native RGB image: dcmtk's decompression of SC_rgb_rle.dcm.
	rgb := filepath.Join(t.TempDir(), "rgb.dcm")
	runTool(t, "dcmdrle", filepath.Join(dir, "SC_rgb_rle.dcm"), rgb)
	// A native unsigned 12-bit image (near-lossless JPEG-LS in dcmtk takes
	// no signed data): CT_small windowed to 12 bits through JPEG Extended.
	gray12 := filepath.Join(t.TempDir(), "gray12.dcm")
	runTool(t, "dcmcjpeg", "+ee", "+Wm", "+q", "100", ct, gray12+".jpg.dcm")
	runTool(t, "dcmdjpeg", gray12+".jpg.dcm", gray12)
	cases := []struct {
		name, src, tool string
		args            []string
	}{
		{"jpeg-sv1", ct, "dcmcjpeg", []string{"+e1"}},
		{"jpeg-sv2", ct, "dcmcjpeg", []string{"+el", "+sv", "2"}},
		{"jpeg-sv3", ct, "dcmcjpeg", []string{"+el", "+sv", "3"}},
		{"jpeg-sv4", ct, "dcmcjpeg", []string{"+el", "+sv", "4"}},
		{"jpeg-sv5", ct, "dcmcjpeg", []string{"+el", "+sv", "5"}},
		{"jpeg-sv6", mr, "dcmcjpeg", []string{"+el", "+sv", "6"}},
		{"jpeg-sv7", mr, "dcmcjpeg", []string{"+el", "+sv", "7"}},
		{"jpeg-sv3-pt2", ct, "dcmcjpeg", []string{"+el", "+sv", "3", "+pt", "2"}},
		{"jpeg-sv1-1KiB-fragments", ct, "dcmcjpeg", []string{"+e1", "+fs", "1"}},
		{"jpeg-lossless-rgb-sv7", rgb, "dcmcjpeg", []string{"+el", "+sv", "7"}},
		{"jpeg-baseline-gray", ct, "dcmcjpeg", []string{"+eb", "+Wm"}},
		{"jpeg-extended-12bit", ct, "dcmcjpeg", []string{"+ee", "+Wm", "+q", "75"}},
		{"jpeg-extended-12bit-rgb", rgb, "dcmcjpeg", []string{"+ee", "+bt"}},
		{"jpeg-baseline-rgb-411", rgb, "dcmcjpeg", []string{"+eb", "+n1"}},
		{"jpegls-lossless", ct, "dcmcjpls", []string{"+el"}},
		{"jpegls-near2", gray12, "dcmcjpls", []string{"+en", "+md", "2"}},
		{"jpegls-rgb-none", rgb, "dcmcjpls", []string{"+el", "+in"}},
		{"jpegls-rgb-line", rgb, "dcmcjpls", []string{"+el", "+il"}},
		{"jpegls-rgb-sample", rgb, "dcmcjpls", []string{"+el", "+is"}},
		{"jpegls-rgb-near", rgb, "dcmcjpls", []string{"+en", "+md", "3"}},
		{"rle-ct", ct, "dcmcrle", nil},
		{"rle-mr", mr, "dcmcrle", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			enc := filepath.Join(t.TempDir(), "enc.dcm")
			runTool(t, c.tool, append(append([]string{}, c.args...), c.src, enc)...)
			f, err := readDICOM(t, enc)
			if err != nil {
				t.Fatal(err)
			}
			worst := compareWithDCMTK(t, enc)
			t.Logf("%s: max abs difference from dcmtk %d", f.ts, worst)
			if worst > maxLossyError {
				t.Errorf("max abs difference from dcmtk %d, limit %d", worst, maxLossyError)
			}
		})
	}
}

// TestJ2KLosslessTwins compares lossless JPEG 2000 with the uncompressed
// twin pydicom ships (dcmtk has no JPEG 2000 codec).
func TestJ2KLosslessTwins(t *testing.T) {
	dir := pydicomDir(t)
	for _, tc := range []struct{ j2k, native string }{
		{"MR_small_jp2klossless.dcm", "MR_small.dcm"},
	} {
		t.Run(tc.j2k, func(t *testing.T) {
			f, err := readDICOM(t, filepath.Join(dir, tc.j2k))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := readDICOM(t, filepath.Join(dir, tc.native))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeFile(t, f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[0].Pixels, ref.frames[0]) {
				t.Errorf("differs from %s: max abs difference %d", tc.native, maxAbsDiff(got[0].Pixels, ref.frames[0], f.p.BitsAllocated))
			}
		})
	}
}

// TestJ2KPixelRepresentationMismatch: J2K_pixelrep_mismatch.dcm declares
// Pixel Representation 1 but its codestream is unsigned 13-bit (pydicom
// issue 1149); the codestream wins.
func TestJ2KPixelRepresentationMismatch(t *testing.T) {
	f, err := readDICOM(t, filepath.Join(pydicomDir(t), "J2K_pixelrep_mismatch.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if f.p.PixelRepresentation != 1 {
		t.Fatalf("test file declares pixel representation %d", f.p.PixelRepresentation)
	}
	got, err := Decode(f.ts, f.frames[0], f.p)
	if err != nil {
		t.Fatal(err)
	}
	if got.PixelRepresentation != 0 {
		t.Errorf("PixelRepresentation %d, want 0 from the codestream", got.PixelRepresentation)
	}
	// Unsigned 13-bit samples: nothing above bit 12 is set.
	for i := 0; i < len(got.Pixels); i += 2 {
		if v := int(got.Pixels[i]) | int(got.Pixels[i+1])<<8; v >= 1<<13 {
			t.Fatalf("sample %d = %d does not fit 13 unsigned bits", i/2, v)
		}
	}
}
