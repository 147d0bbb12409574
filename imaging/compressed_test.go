package imaging

import (
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/imaging/codec"
)

// Transfer syntaxes whose compression is lossless (PS3.5 A.4, Table A-1).
var losslessTS = map[string]bool{
	"1.2.840.10008.1.2.4.57": true, "1.2.840.10008.1.2.4.70": true, // JPEG lossless
	"1.2.840.10008.1.2.4.80": true, // JPEG-LS lossless
	"1.2.840.10008.1.2.4.90": true, // JPEG 2000 lossless only
	"1.2.840.10008.1.2.5":    true, // RLE
}

// uncompressedTwins: pydicom files whose pixels are those of another,
// native file.
var uncompressedTwins = map[string]string{
	"MR_small_RLE.dcm":              "MR_small.dcm",
	"MR_small_jpeg_ls_lossless.dcm": "MR_small.dcm",
	"MR_small_jp2klossless.dcm":     "MR_small.dcm",
	"rtdose_rle.dcm":                "rtdose.dcm",
	"rtdose_rle_1frame.dcm":         "rtdose_1frame.dcm",
}

// dcmtkDecompressor names the DCMTK tool that decompresses a transfer
// syntax to explicit VR little endian, or "".
func dcmtkDecompressor(ts string) string {
	switch {
	case ts == "1.2.840.10008.1.2.5":
		return "dcmdrle"
	case ts == "1.2.840.10008.1.2.4.80" || ts == "1.2.840.10008.1.2.4.81":
		return "dcmdjpls"
	case ts >= "1.2.840.10008.1.2.4.50" && ts <= "1.2.840.10008.1.2.4.70" && len(ts) == len("1.2.840.10008.1.2.4.50"):
		return "dcmdjpeg"
	}
	return ""
}

// TestLoadCompressed: every encapsulated pydicom test file decodes through
// codec.Decode; lossless ones equal their uncompressed twin, or else what
// DCMTK decompresses (loaded through the native path); lossy ones agree
// with DCMTK within a small error (different IDCTs). Each subtest skips
// while codec.Supported is false for its transfer syntax: rerun this test
// when the codec package lands.
func TestLoadCompressed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	needPeer(t, "python3-pydicom test files", errIfEmpty(files))
	n := 0
	for _, p := range files {
		ts := im0TS(t, p)
		if ts == "" || isNative(ts) {
			continue
		}
		n++
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			if !codec.Supported(ts) {
				t.Skipf("codec does not decode %s yet", ts)
			}
			got, err := LoadFile(p)
			if want, ok := knownRefusals[name]; ok {
				if !errors.Is(err, want) {
					t.Fatalf("Load = %v, want %v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if why, ok := referencesWrong[name]; ok {
				t.Skipf("loads; not compared: %s", why)
			}
			var want *Image
			if twin, ok := uncompressedTwins[name]; ok {
				want, err = LoadFile(filepath.Join(pydicomFiles, twin))
			} else if tool := dcmtkDecompressor(ts); tool != "" {
				out := filepath.Join(t.TempDir(), "native.dcm")
				cmd := exec.Command(tool, p, out)
				if b, err := cmd.CombinedOutput(); err != nil {
					needPeer(t, tool+" (dcmtk)", errors.New(strings.TrimSpace(string(b))+": "+err.Error()))
				}
				want, err = LoadFile(out)
			} else {
				t.Logf("%s: %d×%d×%d frames decoded; no reference decoder here", ts, got.Rows, got.Cols, got.Frames)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			compareDecoded(t, ts, allFrames(t, got), allFrames(t, want), 1e-3)
		})
	}
	if n == 0 {
		t.Fatal("no encapsulated test files found")
	}
}

func isNative(ts string) bool {
	switch ts {
	case tsImplicitVRLittleEndian, tsExplicitVRLittleEndian, tsDeflatedExplicitVRLE, tsExplicitVRBigEndian:
		return true
	}
	return false
}

func errIfEmpty(files []string) error {
	if len(files) == 0 {
		return errors.New("no *.dcm in " + pydicomFiles)
	}
	return nil
}

// compareDecoded compares decoded values with a reference: within tol for
// native and lossless syntaxes; for lossy ones, where decoders may differ
// in their IDCT and colour conversion rounding, within a small mean and
// maximum error.
func compareDecoded(t *testing.T, ts string, got, want []float32, tol float64) {
	t.Helper()
	if isNative(ts) || losslessTS[ts] {
		compareValues(t, got, want, tol)
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	mean, worst := diff(got, want)
	t.Logf("lossy %s: mean |Δ| %.3f, max %.1f", ts, mean, worst)
	if mean > 1 || worst > 16 {
		t.Errorf("lossy decode differs from the reference: mean |Δ| %.3f, max %.1f", mean, worst)
	}
}

func diff(a, b []float32) (mean, worst float64) {
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		mean += d
		worst = max(worst, d)
	}
	return mean / float64(len(a)), worst
}

// TestUnsupportedCodec: an encapsulated syntax the codec cannot decode is
// a per-instance ErrUnsupportedTransferSyntax (MPEG-2 is never decoded).
func TestUnsupportedCodec(t *testing.T) {
	const mpeg2 = "1.2.840.10008.1.2.4.100"
	if codec.Supported(mpeg2) {
		t.Skip("codec decodes MPEG-2")
	}
	b := part10(mpeg2, encapsulated(nil, []byte{0, 0, 1, 0xB3}), mono16(2, 2, 16, 15, 0, nil)[:11]...)
	_, err := Load(bytesReader(b))
	if !errors.Is(err, ErrUnsupportedTransferSyntax) || !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("Load = %v", err)
	}
}
