package codec

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// knownBroken lists pydicom test files with an encapsulated transfer
// syntax that cannot decode by design, with the error each must give.
var knownBroken = map[string]struct {
	reason string
	want   error // nil: the file has no Pixel Data to decode
}{
	"UN_sequence.dcm": {reason: "no Pixel Data: it tests a sequence encoded as UN", want: nil},
	"SC_rgb_jpeg.dcm": {
		reason: "the File Meta declares JPEG Baseline (explicit VR) but the data set is implicit VR (PS3.5 A.4 requires explicit); dcmtk and suyashkumar/dicom stop at a bogus element (4544,4952) before Pixel Data, only pydicom guesses",
		want:   errUnreadable,
	},
	"JPEG2000-embedded-sequence-delimiter.dcm": {
		reason: "4 codestream bytes were overwritten with a Sequence Delimitation Item (pydicom README: \"almost certainly not a valid JPEG anymore\")",
		want:   ErrCorrupt,
	},
}

// errUnreadable marks a file the DICOM readers (dcmtk, suyashkumar/dicom)
// cannot parse up to its Pixel Data.
var errUnreadable = errors.New("data set unreadable")

// pydicomEncapsulated returns every pydicom test file whose transfer
// syntax is encapsulated, by name.
func pydicomEncapsulated(t *testing.T) map[string]string {
	t.Helper()
	dir := pydicomDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, _ := readDICOM(t, path)
		if isEncapsulated(f.ts) {
			out[e.Name()] = path
		}
	}
	if len(out) == 0 {
		t.Fatalf("no encapsulated files in %s", dir)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeFile decodes every frame of an encapsulated file.
func decodeFile(t *testing.T, f dicomFile) ([]Frame, error) {
	t.Helper()
	var out []Frame
	for i, fr := range f.frames {
		d, err := Decode(f.ts, fr, f.p)
		if err != nil {
			return nil, err
		}
		if len(d.Pixels) != f.p.Rows*f.p.Cols*f.p.SamplesPerPixel*f.p.BitsAllocated/8 {
			t.Fatalf("frame %d: %d bytes", i, len(d.Pixels))
		}
		out = append(out, d)
	}
	return out, nil
}

// TestPydicomFilesDecode decodes every frame of every encapsulated pydicom
// test file, or checks the error of those listed in knownBroken.
func TestPydicomFilesDecode(t *testing.T) {
	files := pydicomEncapsulated(t)
	for _, name := range sortedKeys(files) {
		t.Run(name, func(t *testing.T) {
			f, err := readDICOM(t, files[name])
			bad, isBad := knownBroken[name]
			if isBad && bad.want == nil {
				if err == nil && len(f.frames) > 0 {
					t.Fatalf("listed as having no Pixel Data (%s) but has %d frames", bad.reason, len(f.frames))
				}
				t.Logf("not decoded: %s", bad.reason)
				return
			}
			switch {
			case isBad && bad.want == errUnreadable && err != nil:
				t.Logf("not decoded: %s: %v", bad.reason, err)
				return
			case isBad && bad.want == errUnreadable:
				t.Fatalf("listed as unreadable (%s) but reads", bad.reason)
			case err != nil:
				t.Fatalf("reading: %v", err)
			}
			if !Supported(f.ts) {
				t.Fatalf("transfer syntax %s not supported", f.ts)
			}
			_, err = decodeFile(t, f)
			switch {
			case isBad && !errors.Is(err, bad.want):
				t.Fatalf("want %v (%s), got %v", bad.want, bad.reason, err)
			case isBad:
				t.Logf("expected failure (%s): %v", bad.reason, err)
			case err != nil:
				t.Fatalf("%s: %v", f.ts, err)
			}
		})
	}
	for name := range knownBroken {
		if _, ok := files[name]; !ok {
			t.Errorf("knownBroken lists %s, which is not an encapsulated pydicom file", name)
		}
	}
}

// dcmtkDecompress runs the dcmtk decompressor for ts on src, writing
// explicit VR little endian, and reads the result. JPEG colour handling
// is given explicitly: "+cn" never converts, "+ca" always converts YCbCr
// to RGB.
func dcmtkDecompress(t *testing.T, ts, src string, jpegColour string) dicomFile {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "native.dcm")
	switch {
	case ts == tsRLELossless:
		runTool(t, "dcmdrle", "+te", src, dst)
	case ts == tsJPEGLSLossless || ts == tsJPEGLSNearLossless:
		runTool(t, "dcmdjpls", "+te", src, dst)
	default:
		runTool(t, "dcmdjpeg", "+te", jpegColour, src, dst)
	}
	f, err := readDICOM(t, dst)
	if err != nil {
		t.Fatalf("reading dcmtk output: %v", err)
	}
	return f
}

// maxAbsDiff compares two native frames sample by sample.
func maxAbsDiff(a, b []byte, bitsAllocated int) int {
	worst := 0
	step := bitsAllocated / 8
	for i := 0; i+step <= len(a) && i+step <= len(b); i += step {
		var x, y int
		for k := step - 1; k >= 0; k-- {
			x, y = x<<8|int(a[i+k]), y<<8|int(b[i+k])
		}
		worst = max(worst, x-y, y-x)
	}
	return worst
}

// compareWithDCMTK decodes path and the dcmtk-decompressed copy and
// returns the largest sample difference over all frames.
func compareWithDCMTK(t *testing.T, path string) int {
	t.Helper()
	f, err := readDICOM(t, path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFile(t, f)
	if err != nil {
		t.Fatal(err)
	}
	// Ask dcmtk for the colour space this package chose.
	colour := "+cn"
	if jpegConvertsColour(t, f) {
		colour = "+ca"
	}
	ref := dcmtkDecompress(t, f.ts, path, colour)
	if len(ref.frames) != len(got) {
		t.Fatalf("dcmtk gives %d frames, we %d", len(ref.frames), len(got))
	}
	if f.p.SamplesPerPixel == 3 && ref.p.PhotometricInterpretation != got[0].PhotometricInterpretation {
		t.Errorf("photometric interpretation %s, dcmtk %s", got[0].PhotometricInterpretation, ref.p.PhotometricInterpretation)
	}
	worst := 0
	for i := range got {
		if len(ref.frames[i]) != len(got[i].Pixels) {
			t.Fatalf("frame %d: %d bytes, dcmtk %d", i, len(got[i].Pixels), len(ref.frames[i]))
		}
		worst = max(worst, maxAbsDiff(got[i].Pixels, ref.frames[i], f.p.BitsAllocated))
	}
	return worst
}

// jpegConvertsColour reports whether the JPEG decoder treats the file's
// first frame as YCbCr (see isYCbCr); the declared Photometric
// Interpretation alone does not say (SC_rgb_jpeg_lossy_gdcm.dcm declares
// RGB for a JFIF-style YCbCr stream).
func jpegConvertsColour(t *testing.T, f dicomFile) bool {
	t.Helper()
	if f.ts != tsJPEGBaseline && f.ts != tsJPEGExtended {
		return false // lossless JPEG has no colour transform
	}
	d := &jpegDecoder{p: f.p}
	if err := d.decode(f.frames[0]); err != nil {
		t.Fatal(err)
	}
	return d.sof != mSOF3 && d.isYCbCr()
}

func isLossless(ts string) bool {
	switch ts {
	case tsRLELossless, tsJPEGLossless, tsJPEGLosslessSV1, tsJPEGLSLossless, tsJ2KLossless, tsHTJ2KLossless, tsHTJ2KLosslessRPCL:
		return true
	}
	return false
}

// dcmtkDecodes reports whether Debian's dcmtk decompresses ts (it has no
// JPEG 2000).
func dcmtkDecodes(ts string) bool {
	return ts == tsRLELossless || strings.HasPrefix(ts, "1.2.840.10008.1.2.4.5") ||
		ts == tsJPEGLosslessSV1 || ts == tsJPEGLSLossless || ts == tsJPEGLSNearLossless
}

// maxLossyError is the largest per-sample difference from dcmtk accepted
// for lossy JPEG; the IDCT, upsampling and colour conversion reproduce
// IJG's integer arithmetic, so the difference found is 0.
const maxLossyError = 0

// TestPydicomFilesMatchDCMTK compares every pydicom file dcmtk can
// decompress: lossless ones byte for byte, lossy ones within
// maxLossyError (and near-lossless JPEG-LS exactly, since the decoder is
// deterministic).
func TestPydicomFilesMatchDCMTK(t *testing.T) {
	files := pydicomEncapsulated(t)
	for _, name := range sortedKeys(files) {
		if _, bad := knownBroken[name]; bad {
			continue
		}
		f, _ := readDICOM(t, files[name])
		if !dcmtkDecodes(f.ts) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			worst := compareWithDCMTK(t, files[name])
			limit := 0
			if !isLossless(f.ts) && f.ts != tsJPEGLSNearLossless {
				limit = maxLossyError
			}
			t.Logf("%s: max abs difference from dcmtk %d", f.ts, worst)
			if worst > limit {
				t.Errorf("max abs difference from dcmtk %d, limit %d", worst, limit)
			}
		})
	}
}

func TestSupported(t *testing.T) {
	for _, ts := range []string{tsRLELossless, tsJPEGBaseline, tsJPEGExtended, tsJPEGLossless, tsJPEGLosslessSV1,
		tsJPEGLSLossless, tsJPEGLSNearLossless, tsJ2KLossless, tsJ2K, tsHTJ2KLossless, tsHTJ2KLosslessRPCL, tsHTJ2K} {
		if !Supported(ts) {
			t.Errorf("%s not supported", ts)
		}
	}
	// Native syntaxes need no codec; deflate and MPEG are not decoded here.
	for _, ts := range []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.53"} {
		if Supported(ts) {
			t.Errorf("%s reported supported", ts)
		}
	}
}
