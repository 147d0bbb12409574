package codec

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// pydicomTestFiles is where Debian's python3-pydicom keeps its test data
// set; the tests read those files in place.
const pydicomTestFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// requirePeer skips (or, with RADGATE_REQUIRE_PEERS=1, fails) when a
// peer file or program is missing.
func requirePeer(tb testing.TB, ok bool, what string) {
	tb.Helper()
	if ok {
		return
	}
	if os.Getenv("RADGATE_REQUIRE_PEERS") == "1" {
		tb.Fatalf("%s is missing and RADGATE_REQUIRE_PEERS=1", what)
	}
	tb.Skipf("%s is missing; skipping", what)
}

func pydicomDir(tb testing.TB) string {
	tb.Helper()
	_, err := os.Stat(pydicomTestFiles)
	requirePeer(tb, err == nil, "pydicom test files ("+pydicomTestFiles+", Debian python3-pydicom)")
	return pydicomTestFiles
}

func requireTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	requirePeer(tb, err == nil, name+" (Debian dcmtk)")
	return path
}

// ctSlice512 is a native 512×512 16-bit CT slice shipped in the Go module
// cache with github.com/grailbio/go-dicom (see PEERS.md), used for
// benchmarks at CT size.
func ctSlice512(tb testing.TB) string {
	tb.Helper()
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err == nil {
			cache = strings.TrimSpace(string(out))
		}
	}
	path := filepath.Join(cache, "github.com/grailbio/go-dicom@v0.0.0-20211105193521-b0e216a1c5cd/examples/CT-MONO2-16-ort.dcm")
	_, err := os.Stat(path)
	requirePeer(tb, err == nil, "CT-MONO2-16-ort.dcm from module github.com/grailbio/go-dicom")
	return path
}

// dicomFile is what the tests need from a DICOM file: its transfer
// syntax, Image Pixel attributes and per-frame pixel bytes (compressed
// for encapsulated syntaxes, native little-endian otherwise).
type dicomFile struct {
	ts     string
	p      Params
	frames [][]byte
}

func isEncapsulated(ts string) bool {
	return strings.HasPrefix(ts, "1.2.840.10008.1.2.4.") || ts == tsRLELossless
}

// readDICOM parses a file with suyashkumar/dicom. That library makes every
// Pixel Data fragment a frame and ignores the Basic Offset Table, so the
// fragments are regrouped here: one frame per fragment when the counts
// agree, all fragments for a single-frame image, otherwise a new frame at
// each fragment that starts a JPEG (SOI) or JPEG 2000 (SOC or JP2) stream
// (PS3.5 A.4: a frame may span fragments, a fragment never holds two).
func readDICOM(tb testing.TB, path string) (dicomFile, error) {
	tb.Helper()
	// On a parse error the library returns what it read so far; a file
	// whose trailing elements are broken still yields its Pixel Data
	// (pydicom's SC_rgb_jpeg.dcm).
	ds, perr := dicom.ParseFile(path, nil)
	f, err := fromDataset(tb, ds)
	switch {
	case perr != nil && (err != nil || f.frames == nil):
		return f, perr
	case perr != nil:
		tb.Logf("%s: parse error after Pixel Data, ignored: %v", filepath.Base(path), perr)
	}
	return f, err
}

func fromDataset(tb testing.TB, ds dicom.Dataset) (dicomFile, error) {
	tb.Helper()
	var err error
	str := func(t tag.Tag) string {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return ""
		}
		s, ok := e.Value.GetValue().([]string)
		if !ok || len(s) == 0 {
			return ""
		}
		return strings.TrimRight(s[0], " \x00")
	}
	num := func(t tag.Tag) int {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return 0
		}
		v, ok := e.Value.GetValue().([]int)
		if !ok || len(v) == 0 {
			return 0
		}
		return v[0]
	}
	f := dicomFile{
		ts: str(tag.TransferSyntaxUID),
		p: Params{
			Rows: num(tag.Rows), Cols: num(tag.Columns),
			SamplesPerPixel: num(tag.SamplesPerPixel), BitsAllocated: num(tag.BitsAllocated),
			BitsStored: num(tag.BitsStored), PixelRepresentation: num(tag.PixelRepresentation),
			PhotometricInterpretation: str(tag.PhotometricInterpretation),
		},
	}
	nframes := 1
	if s := str(tag.NumberOfFrames); s != "" {
		if nframes, err = strconv.Atoi(s); err != nil {
			return f, err
		}
	}
	pd, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return f, err
	}
	info := dicom.MustGetPixelDataInfo(pd.Value)
	if !info.IsEncapsulated {
		for _, fr := range info.Frames {
			f.frames = append(f.frames, nativeBytes(tb, fr.NativeData.RawDataSlice(), f.p.BitsAllocated))
		}
		return f, nil
	}
	var frags [][]byte
	for _, fr := range info.Frames {
		frags = append(frags, fr.EncapsulatedData.Data)
	}
	switch {
	case len(frags) == nframes:
		f.frames = frags
	case nframes == 1:
		f.frames = [][]byte{bytes.Join(frags, nil)}
	default:
		for _, b := range frags {
			starts := bytes.HasPrefix(b, []byte{0xFF, 0xD8}) || bytes.HasPrefix(b, j2kCodestreamStart) || bytes.HasPrefix(b, jp2Signature)
			if starts || len(f.frames) == 0 {
				f.frames = append(f.frames, nil)
			}
			f.frames[len(f.frames)-1] = append(f.frames[len(f.frames)-1], b...)
		}
	}
	return f, nil
}

// nativeBytes serialises suyashkumar/dicom's native sample slice back to
// little-endian samples of bitsAllocated bits.
func nativeBytes(tb testing.TB, raw any, bitsAllocated int) []byte {
	tb.Helper()
	var out []byte
	put := func(v uint32) {
		switch bitsAllocated {
		case 8:
			out = append(out, byte(v))
		case 16:
			out = binary.LittleEndian.AppendUint16(out, uint16(v))
		default:
			out = binary.LittleEndian.AppendUint32(out, v)
		}
	}
	switch s := raw.(type) {
	case []uint8:
		for _, v := range s {
			put(uint32(v))
		}
	case []int8:
		for _, v := range s {
			put(uint32(v))
		}
	case []uint16:
		for _, v := range s {
			put(uint32(v))
		}
	case []int16:
		for _, v := range s {
			put(uint32(v))
		}
	case []uint32:
		for _, v := range s {
			put(v)
		}
	case []int32:
		for _, v := range s {
			put(uint32(v))
		}
	case []int:
		for _, v := range s {
			put(uint32(v))
		}
	default:
		tb.Fatalf("native samples of type %T", raw)
	}
	return out
}

// runTool runs a dcmtk program and fails the test with its output on
// error.
func runTool(tb testing.TB, name string, args ...string) {
	tb.Helper()
	out, err := exec.Command(requireTool(tb, name), args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func dirExists(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
