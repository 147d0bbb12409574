package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

// python3 is Debian's, which has python3-pydicom (not the pyenv one on PATH).
const python3 = "/usr/bin/python3"

// requirePydicom skips t unless /usr/bin/python3 imports pydicom and its
// sample files are installed.
func requirePydicom(t *testing.T) {
	t.Helper()
	peertest.Require(t, "pydicom")
	if err := exec.Command(python3, "-c", "import pydicom, numpy").Run(); err != nil {
		msg := python3 + " cannot import pydicom and numpy (Debian: apt-get install python3-pydicom python3-numpy)"
		if os.Getenv(peertest.RequirePeersEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// pydicomFile reads one of pydicom's sample files.
func pydicomFile(t *testing.T, name string) []byte {
	t.Helper()
	requirePydicom(t)
	b, err := os.ReadFile(filepath.Join(peertest.PydicomTestFiles, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pyrun runs a pydicom script with args and returns its stdout.
func pyrun(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(python3, append([]string{"-c", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v\n%s%s", err, out, stderr.Bytes())
	}
	return out
}

// stored puts a file and returns its index record.
func (ts *testServer) stored(t *testing.T, f []byte) store.Instance {
	t.Helper()
	ts.put(t, f)
	meta, _, err := dcm.OpenPart10(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	in, err := ts.st.Instance(context.Background(), meta.MediaStorageSOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// blob is the stored Part 10 file of in.
func (ts *testServer) blob(t *testing.T, in store.Instance) []byte {
	t.Helper()
	rc, err := ts.st.OpenBlob(context.Background(), in.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func instancePath(in store.Instance) string {
	return "/dicomweb/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID + "/instances/" + in.SOPInstanceUID
}

// get requests path (relative to the server, or an absolute URL) with an
// Accept header unless accept is "".
func (ts *testServer) get(t *testing.T, path, accept string) *http.Response {
	t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = ts.URL + path
	}
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// wantStatus reads and closes the body, failing unless the status is code.
func wantStatus(t *testing.T, resp *http.Response, code int) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != code {
		t.Fatalf("%s: status %d, want %d: %s", resp.Request.URL.Path, resp.StatusCode, code, b)
	}
	return b
}

type part struct {
	contentType string
	body        []byte
}

// parts parses a 200 multipart/related response whose parts are of type
// typ.
func parts(t *testing.T, resp *http.Response, typ string) []part {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: status %d: %s", resp.Request.URL.Path, resp.StatusCode, b)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["type"] != typ {
		t.Fatalf("Content-Type %q, want multipart/related; type=%q", resp.Header.Get("Content-Type"), typ)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var out []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, part{p.Header.Get("Content-Type"), b})
	}
}

func TestWADORetrieveInstances(t *testing.T) {
	ts := newTestServer(t, Config{})
	files := ctPhantom(t, 7, 3)
	var ins []store.Instance
	for _, f := range files {
		ins = append(ins, ts.stored(t, f))
	}
	want := map[string][]byte{} // SOP Instance UID → stored blob
	for i, in := range ins {
		b := ts.blob(t, in)
		// The blob holds the sent data set byte for byte behind its file meta.
		_, data, err := dcm.OpenPart10(bytes.NewReader(files[i]))
		if err != nil {
			t.Fatal(err)
		}
		sent, _ := io.ReadAll(data)
		if !bytes.Equal(b[in.DatasetOffset:], sent) {
			t.Fatalf("instance %d: stored data set differs from the sent one", i)
		}
		want[in.SOPInstanceUID] = b
	}
	in := ins[0]
	for _, tc := range []struct {
		name, path, accept string
		n                  int
	}{
		{"study", "/dicomweb/studies/" + in.StudyInstanceUID, "", 3},
		{"series", "/dicomweb/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID, "*/*", 3},
		{"instance", instancePath(in), `multipart/related; type="application/dicom"`, 1},
		{"as stored", instancePath(in), `multipart/related; type="application/dicom"; transfer-syntax=*`, 1},
		{"stored syntax named", instancePath(in), `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`, 1},
		{"second choice", instancePath(in), `image/png, multipart/related; type="application/dicom"; q=0.5`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := parts(t, ts.get(t, tc.path, tc.accept), MediaDICOM)
			if len(ps) != tc.n {
				t.Fatalf("%d parts, want %d", len(ps), tc.n)
			}
			for _, p := range ps {
				if p.contentType != MediaDICOM+"; transfer-syntax="+in.TransferSyntaxUID {
					t.Errorf("part Content-Type %q", p.contentType)
				}
				meta, _, err := dcm.OpenPart10(bytes.NewReader(p.body))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p.body, want[meta.MediaStorageSOPInstanceUID]) {
					t.Errorf("part of %s differs from the stored file", meta.MediaStorageSOPInstanceUID)
				}
			}
		})
	}
}

func TestWADONotFound(t *testing.T) {
	ts := newTestServer(t, Config{})
	in := ts.stored(t, ctPhantom(t, 8, 1)[0])
	st, se := "/dicomweb/studies/"+in.StudyInstanceUID, "/series/"+in.SeriesInstanceUID
	for _, p := range []string{
		"/dicomweb/studies/1.2.3",
		st + "/series/1.2.3",
		st + se + "/instances/1.2.3",
		"/dicomweb/studies/1.2.3/metadata",
		st + "/series/1.2.3/metadata",
		st + se + "/instances/1.2.3/frames/1",
		st + se + "/instances/1.2.3/rendered",
		instancePath(in) + "/frames/2",
		instancePath(in) + "/frames/2/rendered",
		instancePath(in) + "/bulkdata/00100010",
		instancePath(in) + "/bulkdata/00081140/5/00081155",
	} {
		wantStatus(t, ts.get(t, p, ""), http.StatusNotFound)
	}
	for _, p := range []string{"/frames/0", "/frames/x", "/frames/1,", "/frames/1,2/rendered", "/rendered?window=40", "/rendered?window=40,0,linear",
		"/rendered?window=40,400,sigmoid", "/rendered?viewport=0,10", "/rendered?quality=101"} {
		wantStatus(t, ts.get(t, instancePath(in)+p, ""), http.StatusBadRequest)
	}
}

// TestWADOTranscode asks native non-default syntaxes for explicit VR
// little endian and checks the pixels and attributes survived.
func TestWADOTranscode(t *testing.T) {
	for _, name := range []string{"MR_small_implicit.dcm", "MR_small_bigendian.dcm"} {
		t.Run(name, func(t *testing.T) {
			src := pydicomFile(t, name)
			ts := newTestServer(t, Config{})
			in := ts.stored(t, src)
			ps := parts(t, ts.get(t, instancePath(in), `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`), MediaDICOM)
			if len(ps) != 1 || ps[0].contentType != MediaDICOM+"; transfer-syntax="+tsExplicitLE {
				t.Fatalf("parts %d, Content-Type %q", len(ps), ps[0].contentType)
			}
			meta, _, err := dcm.OpenPart10(bytes.NewReader(ps[0].body))
			if err != nil {
				t.Fatal(err)
			}
			if meta.TransferSyntaxUID != tsExplicitLE || meta.MediaStorageSOPInstanceUID != in.SOPInstanceUID {
				t.Fatalf("file meta: %+v", meta)
			}
			a, err := imaging.Load(bytes.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			b, err := imaging.Load(bytes.NewReader(ps[0].body))
			if err != nil {
				t.Fatal(err)
			}
			fa, _ := a.Frame(0)
			fb, _ := b.Frame(0)
			if d := cmp.Diff(fa, fb); d != "" {
				t.Errorf("pixels differ (-stored +transcoded):\n%s", d)
			}
			if d := cmp.Diff(a.Header(), b.Header(), cmp.AllowUnexported(imaging.Image{})); d != "" && !strings.Contains(d, "TransferSyntaxUID") {
				t.Errorf("header differs:\n%s", d)
			}
			// pydicom reads every attribute of the source back the same.
			f := filepath.Join(t.TempDir(), "out.dcm")
			if err := os.WriteFile(f, ps[0].body, 0o600); err != nil {
				t.Fatal(err)
			}
			pyrun(t, `import sys, pydicom
a = pydicom.dcmread(sys.argv[1]); b = pydicom.dcmread(sys.argv[2])
assert b.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", b.file_meta.TransferSyntaxUID
# Pixel Data bytes change order from big endian; pixel_array must not.
bad = [str(e.tag) for e in a if e.tag != 0x7FE00010 and (e.tag not in b or b[e.tag].value != e.value)]
assert not bad, bad
assert (a.pixel_array == b.pixel_array).all()`, filepath.Join(peertest.PydicomTestFiles, name), f)
		})
	}
}

func TestWADONotAcceptable(t *testing.T) {
	ts := newTestServer(t, Config{})
	rle := ts.stored(t, pydicomFile(t, "MR_small_RLE.dcm"))
	ct := ts.stored(t, ctPhantom(t, 9, 1)[0])
	for _, tc := range []struct{ path, accept string }{
		{instancePath(rle), `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`},
		{instancePath(ct), `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90`},
		{instancePath(ct), `multipart/related; type="application/dicom+json"`},
		{instancePath(ct), `application/json`},
		{instancePath(ct) + "/metadata", `multipart/related; type="application/dicom"`},
		{instancePath(ct) + "/frames/1", `multipart/related; type="image/jpeg"`},
		{instancePath(ct) + "/rendered", `image/gif`},
		{instancePath(rle) + "/frames/1", `multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1`},
	} {
		wantStatus(t, ts.get(t, tc.path, tc.accept), http.StatusNotAcceptable)
	}
	ps := parts(t, ts.get(t, instancePath(rle), `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5`), MediaDICOM)
	if len(ps) != 1 || !bytes.Equal(ps[0].body, ts.blob(t, rle)) {
		t.Fatal("RLE instance asked in its own syntax: not the stored file")
	}
	wantStatus(t, ts.get(t, instancePath(ct), "multipart/related; type=application/dicom; q=x"), http.StatusBadRequest)
}

// metadataRoundTrip is a pydicom script: argv[1] a metadata response, argv[2]
// the source file. Every attribute of the source that the JSON holds by
// value must come back from Dataset.from_json equal, sequences included.
const metadataRoundTrip = `import sys, json, numpy, pydicom
from pydicom.dataset import Dataset
arr = json.load(open(sys.argv[1], encoding="utf-8"))
assert len(arr) == 1, len(arr)
got = Dataset.from_json(arr[0])
src = pydicom.dcmread(sys.argv[2], stop_before_pixels=True)
bad = []
def same(a, b, where):
    for e in a:
        if e.tag.group == 2 or e.tag.element == 0:
            continue
        if e.tag not in b:
            bad.append(where + str(e.tag) + " missing"); continue
        g = b[e.tag]
        if e.VR == "SQ":
            if len(e.value) != len(g.value):
                bad.append(where + str(e.tag) + " items")
            for i, (x, y) in enumerate(zip(e.value, g.value)):
                same(x, y, where + str(e.tag) + "/%d/" % i)
        elif g.value is None and isinstance(e.value, bytes) and len(e.value) > 1024:
            pass  # a BulkDataURI
        elif e.VR == "FL" and numpy.array_equal(numpy.float32(g.value), numpy.float32(e.value)):
            pass  # JSON carries the shortest decimal of each 32-bit value
        elif g.value != e.value and str(g.value) != str(e.value):
            bad.append("%s%s %r != %r" % (where, e.tag, g.value, e.value))
same(src, got, "")
for kw in sys.argv[3:]:
    assert kw in got, kw + " not in the metadata"
print(json.dumps({"PatientName": str(got.PatientName), "Rows": got.Rows, "IPP": [float(x) for x in got.ImagePositionPatient]}))
if bad:
    sys.exit("mismatches: " + "; ".join(bad))
`

func TestWADOMetadata(t *testing.T) {
	requirePydicom(t)
	ts := newTestServer(t, Config{})
	series := ctPhantom(t, 10, 2)
	phantomFile := series[0]
	for _, tc := range []struct {
		name string
		file []byte
		seqs []string // sequence keywords the source holds
	}{
		{"phantom", phantomFile, nil},
		{"CT_small", pydicomFile(t, "CT_small.dcm"), []string{"OtherPatientIDsSequence"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ts.stored(t, tc.file)
			resp := ts.get(t, instancePath(in)+"/metadata", "")
			body := wantStatus(t, resp, http.StatusOK)
			if ct := resp.Header.Get("Content-Type"); ct != MediaDICOMJSON {
				t.Fatalf("Content-Type %q", ct)
			}
			var arr []map[string]json.RawMessage
			if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 1 {
				t.Fatalf("not a one-element JSON array (%v): %.200s", err, body)
			}
			var pixel dicomjson.Attribute
			if err := json.Unmarshal(arr[0][dicomjson.Key(0x7FE00010)], &pixel); err != nil || !strings.HasPrefix(pixel.BulkDataURI, ts.URL+instancePath(in)+"/bulkdata/") {
				t.Fatalf("Pixel Data: %+v %v", pixel, err)
			}
			dir := t.TempDir()
			jf, sf := filepath.Join(dir, "meta.json"), filepath.Join(dir, "src.dcm")
			os.WriteFile(jf, body, 0o600)
			os.WriteFile(sf, tc.file, 0o600)
			out := pyrun(t, metadataRoundTrip, append([]string{jf, sf}, tc.seqs...)...)
			var got struct {
				PatientName string
				Rows        int
				IPP         []float64
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			want := pyrun(t, `import sys, json, pydicom
s = pydicom.dcmread(sys.argv[1])
print(json.dumps({"PatientName": str(s.PatientName), "Rows": s.Rows, "IPP": [float(x) for x in s.ImagePositionPatient]}))`, sf)
			if string(bytes.TrimSpace(out)) != string(bytes.TrimSpace(want)) {
				t.Errorf("from_json %s, source %s", out, want)
			}
		})
	}
	// Study and series levels list both slices of the phantom.
	in := ts.stored(t, series[1])
	for _, p := range []string{"/dicomweb/studies/" + in.StudyInstanceUID, "/dicomweb/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID} {
		body := wantStatus(t, ts.get(t, p+"/metadata", MediaDICOMJSON), http.StatusOK)
		var arr []dicomjson.Dataset
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 2 {
			t.Fatalf("%s: %v, %d data sets", p, err, len(arr))
		}
	}
}

// pixelData is the source's Pixel Data as pydicom reads it: native bytes,
// or the frames of encapsulated data.
func pixelData(t *testing.T, path string) [][]byte {
	t.Helper()
	dir := t.TempDir()
	pyrun(t, `import sys, os, pydicom
from pydicom.encaps import generate_pixel_data_frame
ds = pydicom.dcmread(sys.argv[1])
frames = [ds.PixelData]
if ds.file_meta.TransferSyntaxUID.is_compressed:
    frames = list(generate_pixel_data_frame(ds.PixelData, int(ds.get("NumberOfFrames", 1))))
elif not ds.file_meta.TransferSyntaxUID.is_little_endian:
    frames = [ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()]
for i, f in enumerate(frames):
    open(os.path.join(sys.argv[2], "%d" % i), "wb").write(f)`, path, dir)
	var out [][]byte
	for i := 0; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			return out
		}
		out = append(out, b)
	}
}

func TestWADOFramesAndBulkdata(t *testing.T) {
	for _, tc := range []struct {
		file, media string
	}{
		{"CT_small.dcm", MediaOctet},
		{"MR_small_bigendian.dcm", MediaOctet},
		{"JPEG2000.dcm", "image/jp2"},
		{"MR_small_RLE.dcm", "image/dicom-rle"},
		{"image_dfl.dcm", MediaOctet},
	} {
		t.Run(tc.file, func(t *testing.T) {
			src := pydicomFile(t, tc.file)
			want := pixelData(t, filepath.Join(peertest.PydicomTestFiles, tc.file))
			ts := newTestServer(t, Config{})
			in := ts.stored(t, src)
			ps := parts(t, ts.get(t, instancePath(in)+"/frames/1", ""), tc.media)
			if len(ps) != 1 || !bytes.Equal(ps[0].body, want[0]) {
				t.Fatalf("frame 1: %d parts, bytes equal %v", len(ps), len(ps) == 1 && bytes.Equal(ps[0].body, want[0]))
			}
			if !strings.HasPrefix(ps[0].contentType, tc.media+"; transfer-syntax=") {
				t.Errorf("part Content-Type %q", ps[0].contentType)
			}
			// The metadata's Pixel Data BulkDataURI answers the same bytes.
			var arr []dicomjson.Dataset
			if err := json.Unmarshal(wantStatus(t, ts.get(t, instancePath(in)+"/metadata", ""), http.StatusOK), &arr); err != nil {
				t.Fatal(err)
			}
			ps = parts(t, ts.get(t, arr[0][dicomjson.Key(0x7FE00010)].BulkDataURI, ""), tc.media)
			if len(ps) != len(want) || !bytes.Equal(ps[0].body, want[0]) {
				t.Fatalf("bulk data: %d parts, want %d", len(ps), len(want))
			}
			wantStatus(t, ts.get(t, instancePath(in)+"/frames/1,2", ""), http.StatusNotFound)
		})
	}
}

// TestWADOMultiFrame: frames of multi-frame instances, in the order
// asked: RLE (one fragment per frame) and native (slices of Pixel Data).
func TestWADOMultiFrame(t *testing.T) {
	for _, tc := range []struct {
		file   string
		frames int
	}{
		{"SC_rgb_rle_2frame.dcm", 2},
		{"rtdose.dcm", 15},
	} {
		t.Run(tc.file, func(t *testing.T) {
			requirePydicom(t)
			// rtdose.dcm's file meta names another SOP Instance UID than
			// its data set, which the store refuses: mend a copy.
			f := filepath.Join(t.TempDir(), tc.file)
			pyrun(t, `import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(sys.argv[2])`, filepath.Join(peertest.PydicomTestFiles, tc.file), f)
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := pixelData(t, f)
			if len(want) == 1 { // native: cut it as the standard does
				size := len(want[0]) / tc.frames
				whole := want[0]
				want = nil
				for i := range tc.frames {
					want = append(want, whole[i*size:(i+1)*size])
				}
			}
			ts := newTestServer(t, Config{})
			in := ts.stored(t, src)
			ps := parts(t, ts.get(t, instancePath(in)+"/frames/2,1,2", `multipart/related; type="application/octet-stream"`), MediaOctet)
			if len(ps) != 3 || !bytes.Equal(ps[0].body, want[1]) || !bytes.Equal(ps[1].body, want[0]) || !bytes.Equal(ps[2].body, want[1]) {
				t.Fatalf("%d parts, or bytes differ", len(ps))
			}
			wantStatus(t, ts.get(t, instancePath(in)+"/frames/"+strconv.Itoa(tc.frames+1), ""), http.StatusNotFound)
		})
	}
}

// TestWADOBulkdataURIs: binary values over maxInlineBinary become a
// BulkDataURI that answers the value pydicom reads.
func TestWADOBulkdataURIs(t *testing.T) {
	src := pydicomFile(t, "CT_small.dcm")
	ts := newTestServer(t, Config{})
	in := ts.stored(t, src)
	var arr []dicomjson.Dataset
	if err := json.Unmarshal(wantStatus(t, ts.get(t, instancePath(in)+"/metadata", ""), http.StatusOK), &arr); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, a := range arr[0] {
		if a.BulkDataURI == "" || k == dicomjson.Key(0x7FE00010) {
			continue
		}
		n++
		ps := parts(t, ts.get(t, a.BulkDataURI, ""), MediaOctet)
		want := pyrun(t, `import sys, pydicom
sys.stdout.buffer.write(pydicom.dcmread(sys.argv[1])[int(sys.argv[2], 16)].value)`, filepath.Join(peertest.PydicomTestFiles, "CT_small.dcm"), k)
		if len(ps) != 1 || len(ps[0].body) <= maxInlineBinary || !bytes.Equal(ps[0].body, want) {
			t.Errorf("%s: %d parts, or not the value", k, len(ps))
		}
	}
	if n == 0 {
		t.Error("CT_small's (0043,1029) of 2 KB is not a BulkDataURI")
	}
}

func TestWADORendered(t *testing.T) {
	ts := newTestServer(t, Config{})
	in := ts.stored(t, ctPhantom(t, 11, 1)[0])
	for _, tc := range []struct {
		name, path, accept, media string
		w, h                      int
	}{
		{"default", "/rendered", "", MediaJPEG, 512, 512},
		{"png", "/rendered?viewport=128,128", "image/png", MediaPNG, 128, 128},
		{"aspect", "/rendered?viewport=100,50&window=40,80,linear", "image/*", MediaJPEG, 50, 50},
		{"no enlarging", "/rendered?viewport=1000,1000&quality=50", "image/jpeg", MediaJPEG, 512, 512},
		{"frame", "/frames/1/rendered?viewport=64,64", "image/png;q=0.9, image/jpeg;q=0.1", MediaPNG, 64, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ts.get(t, instancePath(in)+tc.path, tc.accept)
			body := wantStatus(t, resp, http.StatusOK)
			if ct := resp.Header.Get("Content-Type"); ct != tc.media {
				t.Fatalf("Content-Type %q, want %q", ct, tc.media)
			}
			var img image.Image
			var err error
			if tc.media == MediaPNG {
				img, err = png.Decode(bytes.NewReader(body))
			} else {
				img, err = jpeg.Decode(bytes.NewReader(body))
			}
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Fatalf("%d×%d, want %d×%d", b.Dx(), b.Dy(), tc.w, tc.h)
			}
			lo, hi := uint32(0xFFFF), uint32(0)
			for y := 0; y < tc.h; y++ {
				for x := 0; x < tc.w; x++ {
					v, _, _, _ := img.At(x, y).RGBA()
					lo, hi = min(lo, v), max(hi, v)
				}
			}
			if hi-lo < 0x8000 {
				t.Errorf("grey levels %#x..%#x: no contrast", lo, hi)
			}
		})
	}
}

// BenchmarkRender is a worklist thumbnail of a 512² CT slice: decode,
// window, resize, encode (what .../rendered does after reading the blob).
func BenchmarkRender(b *testing.B) {
	ins, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 1, Slices: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		media string
		p     renderParams
	}{
		{"jpeg512", MediaJPEG, renderParams{quality: defaultJPEGQuality}},
		{"jpeg128", MediaJPEG, renderParams{quality: defaultJPEGQuality, vw: 128, vh: 128}},
		{"png128", MediaPNG, renderParams{vw: 128, vh: 128}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := render(ins[0].Data, bc.p, bc.media); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
