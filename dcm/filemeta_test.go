package dcm

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	return w.Buffer.Write(p)
}

var testMeta = FileMeta{
	MediaStorageSOPClassUID:      "1.2.840.10008.5.1.4.1.1.2",
	MediaStorageSOPInstanceUID:   "1.2.3.4.5",
	TransferSyntaxUID:            ExplicitVRLittleEndian,
	ImplementationClassUID:       ImplementationClassUID,
	ImplementationVersionName:    ImplementationVersionName,
	SourceApplicationEntityTitle: "MODALITY1",
}

func part10(t testing.TB, m FileMeta, ds []byte) []byte {
	t.Helper()
	var w bytes.Buffer
	if err := WriteFileMeta(&w, m); err != nil {
		t.Fatal(err)
	}
	return append(w.Bytes(), ds...)
}

func TestWriteFileMetaBytes(t *testing.T) {
	var w countingWriter
	m := FileMeta{
		MediaStorageSOPClassUID:      "1.2.3",
		MediaStorageSOPInstanceUID:   "1.2",
		TransferSyntaxUID:            ImplicitVRLittleEndian,
		ImplementationClassUID:       "1.9",
		ImplementationVersionName:    "V1X",
		SourceApplicationEntityTitle: "AE",
	}
	if err := WriteFileMeta(&w, m); err != nil {
		t.Fatal(err)
	}
	if w.calls != 1 {
		t.Errorf("Write called %d times, want 1", w.calls)
	}
	want := cat(make([]byte, 128), []byte("DICM"),
		[]byte{2, 0, 0, 0, 'U', 'L', 4, 0, 100, 0, 0, 0},
		[]byte{2, 0, 1, 0, 'O', 'B', 0, 0, 2, 0, 0, 0, 0, 1},
		[]byte{2, 0, 2, 0, 'U', 'I', 6, 0}, []byte("1.2.3\x00"),
		[]byte{2, 0, 3, 0, 'U', 'I', 4, 0}, []byte("1.2\x00"),
		[]byte{2, 0, 0x10, 0, 'U', 'I', 18, 0}, []byte("1.2.840.10008.1.2\x00"),
		[]byte{2, 0, 0x12, 0, 'U', 'I', 4, 0}, []byte("1.9\x00"),
		[]byte{2, 0, 0x13, 0, 'S', 'H', 4, 0}, []byte("V1X "),
		[]byte{2, 0, 0x16, 0, 'A', 'E', 2, 0}, []byte("AE"),
	)
	if diff := cmp.Diff(want, w.Bytes()); diff != "" {
		t.Errorf("bytes (-want +got):\n%s", diff)
	}
	if got := len(want) - 144; got != 100 {
		t.Fatalf("test group length %d", got)
	}
}

func TestWriteFileMetaDefaultsAndErrors(t *testing.T) {
	var w bytes.Buffer
	m := FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.3", TransferSyntaxUID: ExplicitVRLittleEndian}
	if err := WriteFileMeta(&w, m); err != nil {
		t.Fatal(err)
	}
	got, _, err := OpenPart10(&w)
	if err != nil {
		t.Fatal(err)
	}
	m.ImplementationClassUID, m.ImplementationVersionName = ImplementationClassUID, ImplementationVersionName
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	for name, bad := range map[string]FileMeta{
		"no class":        {MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: "1.2"},
		"no instance":     {MediaStorageSOPClassUID: "1.2", TransferSyntaxUID: "1.2"},
		"no ts":           {MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.2"},
		"bad uid":         {MediaStorageSOPClassUID: "1.02", MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: "1.2"},
		"long uid":        {MediaStorageSOPClassUID: "1." + strings.Repeat("1", 63), MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: "1.2"},
		"long version":    {MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: "1.2", ImplementationClassUID: "1.2", ImplementationVersionName: strings.Repeat("V", 17)},
		"backslash in AE": {MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: "1.2", SourceApplicationEntityTitle: `A\B`},
	} {
		if err := WriteFileMeta(io.Discard, bad); !errors.Is(err, ErrInvalidFileMeta) {
			t.Errorf("%s: err = %v, want ErrInvalidFileMeta", name, err)
		}
	}
}

func TestOpenPart10(t *testing.T) {
	ds := basicDataSet(tExplicit)
	full := part10(t, testMeta, ds)
	metaOnly := full[:len(full)-len(ds)]
	noGroupLen := cat(metaOnly[:132], metaOnly[144:]) // (0002,0000) removed
	implicitDS := basicDataSet(tImplicit)
	bigDS := basicDataSet(tBig)
	sniffed := func(ts string) FileMeta {
		return FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", MediaStorageSOPInstanceUID: "1.2.3.4.5", TransferSyntaxUID: ts}
	}
	noTS := testMeta
	noTS.TransferSyntaxUID = ""
	noTSFile := part10(t, FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.3", TransferSyntaxUID: "1.2"}, nil)
	// Cut the (0002,0010) element out and fix nothing else: the group
	// length is ignored by OpenPart10.
	tsAt := bytes.Index(noTSFile, []byte{2, 0, 0x10, 0})
	noTSFile = cat(noTSFile[:tsAt], noTSFile[tsAt+8+4:], implicitDS)

	tests := []struct {
		name string
		in   []byte
		meta FileMeta
		rest []byte
		err  error
		ts   string // transfer syntax to scan rest with
	}{
		{name: "preamble and meta", in: full, meta: testMeta, rest: ds},
		{name: "no preamble", in: full[128:], meta: testMeta, rest: ds},
		{name: "no preamble no DICM", in: full[132:], meta: testMeta, rest: ds},
		{name: "no group length", in: cat(noGroupLen, ds), meta: testMeta, rest: ds},
		{name: "meta only", in: metaOnly, meta: testMeta, rest: nil},
		{name: "raw explicit LE", in: ds, meta: sniffed(ExplicitVRLittleEndian), rest: ds},
		{name: "raw implicit LE", in: implicitDS, meta: sniffed(ImplicitVRLittleEndian), rest: implicitDS},
		{name: "raw explicit BE", in: bigDS, meta: sniffed(ExplicitVRBigEndian), rest: bigDS},
		{name: "raw tiny", in: tExplicit.str(SOPInstanceUID, "UI", "1.2"),
			meta: FileMeta{MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: ExplicitVRLittleEndian}, rest: tExplicit.str(SOPInstanceUID, "UI", "1.2")},
		{name: "meta without transfer syntax", in: noTSFile,
			meta: FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.3", ImplementationClassUID: ImplementationClassUID,
				ImplementationVersionName: ImplementationVersionName, TransferSyntaxUID: ImplicitVRLittleEndian}, rest: implicitDS},

		{name: "empty", in: nil, err: ErrNotDICOM},
		{name: "text", in: []byte("hello, world: this is not a DICOM file at all, it is just text...\n"), err: ErrNotDICOM},
		{name: "zeros", in: make([]byte, 1000), err: ErrNotDICOM},
		{name: "zeros with DICM", in: cat(make([]byte, 128), []byte("DICM")), err: ErrMalformed},
		{name: "truncated meta", in: full[:150], err: ErrMalformed},
		{name: "meta element too long", in: cat(full[:132], []byte{2, 0, 1, 0, 'O', 'B', 0, 0, 0, 0, 1, 0}), err: ErrMalformed},
		{name: "meta over limit", in: cat(full[:132], bytes.Repeat(cat([]byte{2, 0, 0x2, 1, 'O', 'B', 0, 0, 0, 0x40, 0, 0}, make([]byte, 0x4000)), 5)), err: ErrMalformed},
		{name: "meta without VR", in: cat(full[:132], []byte{2, 0, 2, 0, 4, 0, 0, 0, '1', '.', '2', 0}), err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "one byte"} {
				var r io.Reader = bytes.NewReader(tc.in)
				if mode == "one byte" {
					r = iotest.OneByteReader(r)
				}
				meta, rest, err := OpenPart10(r)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("%s: err = %v, want %v", mode, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if diff := cmp.Diff(tc.meta, meta); diff != "" {
					t.Errorf("%s: meta (-want +got):\n%s", mode, diff)
				}
				got, err := io.ReadAll(rest)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.rest, got, cmpEmpty); diff != "" {
					t.Errorf("%s: rest (-want +got):\n%s", mode, diff)
				}
				if len(got) > 0 {
					attrs, err := ScanDataset(bytes.NewReader(got), mustTS(t, meta.TransferSyntaxUID), []Tag{SOPInstanceUID})
					if err != nil || attrs[SOPInstanceUID] != "1.2.3.4.5" && attrs[SOPInstanceUID] != "1.2" {
						t.Errorf("%s: scan after open: %v %v", mode, attrs, err)
					}
				}
			}
		})
	}
}

var cmpEmpty = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })

// TestOpenPart10ReadsNoFurther checks that OpenPart10 leaves the data set
// bytes in r when it does not have to look at them.
func TestOpenPart10ReadsNoFurther(t *testing.T) {
	ds := basicDataSet(tExplicit)
	r := bytes.NewReader(part10(t, testMeta, ds))
	_, rest, err := OpenPart10(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() < len(ds)-8 {
		t.Errorf("OpenPart10 consumed %d data set bytes, want at most 8", len(ds)-r.Len())
	}
	got, _ := io.ReadAll(rest)
	if !bytes.Equal(got, ds) {
		t.Error("data set not replayed intact")
	}
}

func TestWriteFileMetaDCMTK(t *testing.T) {
	dcmdump, err := exec.LookPath("dcmdump")
	if err != nil {
		t.Skip("dcmdump (DCMTK) not installed; install the dcmtk package for this interop test")
	}
	path := filepath.Join(t.TempDir(), "x.dcm")
	f := part10(t, testMeta, basicDataSet(tExplicit))
	if err := writeFile(path, f); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(dcmdump, "-q", "+L", "-M", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	for _, want := range []string{
		"(0002,0000) UL 182", "[1.2.3.4.5]", "=LittleEndianExplicit", "[" + ImplementationClassUID + "]",
		"[RADGATE_0]", "[MODALITY1]", "(0028,0010) US 4",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dcmdump output lacks %q:\n%s", want, out)
		}
	}
}
