package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/dicomjson"
)

// stowBody is a multipart/related body of the parts; each part is
// application/dicom unless its content type is given in types.
func stowBody(t testing.TB, parts [][]byte, types ...string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i, p := range parts {
		ct := MediaDICOM
		if i < len(types) && types[i] != "" {
			ct = types[i]
		}
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ct}})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p)
	}
	mw.Close()
	return buf.Bytes(), `multipart/related; type="application/dicom"; boundary=` + mw.Boundary()
}

// jsonDataset decodes a DICOM JSON data set loosely, for tests.
type jsonDataset map[string]struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

func (d jsonDataset) items(t *testing.T, tag uint32) []jsonDataset {
	t.Helper()
	var out []jsonDataset
	for _, v := range d[dicomjson.Key(tag)].Value {
		var it jsonDataset
		if err := json.Unmarshal(v, &it); err != nil {
			t.Fatalf("item of %08X: %v", tag, err)
		}
		out = append(out, it)
	}
	return out
}

// str is an attribute's first value as a string ("" when absent).
func (d jsonDataset) str(t *testing.T, tag uint32) string {
	t.Helper()
	a, ok := d[dicomjson.Key(tag)]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(a.Value[0], &s); err != nil {
		t.Fatalf("%08X value %s: %v", tag, a.Value[0], err)
	}
	return s
}

type stowResponse struct {
	code     int
	body     dicomjson.Dataset
	text     string
	stored   []string // Referenced SOP Instance UIDs
	failed   map[string]float64
	warnings int
}

func (ts *testServer) stow(t *testing.T, path string, body io.Reader, contentType string, length int64) stowResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+Prefix+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.ContentLength = length
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := stowResponse{code: resp.StatusCode, text: string(b), failed: map[string]float64{}}
	if resp.Header.Get("Content-Type") != MediaDICOMJSON {
		return out
	}
	var raw jsonDataset
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("STOW-RS response %s: %v", b, err)
	}
	for _, it := range raw.items(t, tagReferencedSOPSequence) {
		out.stored = append(out.stored, it.str(t, tagReferencedSOPInstanceUI))
		if _, ok := it[dicomjson.Key(tagWarningReason)]; ok {
			out.warnings++
		}
		if u := it.str(t, tagRetrieveURL); !strings.HasPrefix(u, ts.URL+Prefix+"/studies/") {
			t.Errorf("stored item RetrieveURL %q", u)
		}
	}
	for _, it := range raw.items(t, tagFailedSOPSequence) {
		var reason float64
		json.Unmarshal(it[dicomjson.Key(tagFailureReason)].Value[0], &reason)
		out.failed[it.str(t, tagReferencedSOPInstanceUI)] = reason
	}
	if raw[dicomjson.Key(tagReferencedSOPSequence)].VR != "SQ" {
		t.Errorf("ReferencedSOPSequence missing or not SQ: %s", b)
	}
	return out
}

func sopUID(t *testing.T, part10 []byte) string {
	t.Helper()
	m, _, err := dcm.OpenPart10(bytes.NewReader(part10))
	if err != nil {
		t.Fatal(err)
	}
	return m.MediaStorageSOPInstanceUID
}

func (ts *testServer) count(t *testing.T) int64 {
	t.Helper()
	n, err := ts.st.CountInstances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSTOW stores a series chunked and with a length, reports what was
// stored with the PS3.18 statuses, and keeps a study's target.
func TestSTOW(t *testing.T) {
	ts := newTestServer(t, Config{})
	slices := ctPhantom(t, 1, 4)
	body, ct := stowBody(t, slices[:2])
	// Chunked: the body's length is not known in advance.
	pr, pw := io.Pipe()
	go func() { pw.Write(body); pw.Close() }()
	if r := ts.stow(t, "/studies", pr, ct, -1); r.code != http.StatusOK || len(r.stored) != 2 || len(r.failed) != 0 {
		t.Fatalf("chunked STOW-RS: %d %+v %s", r.code, r, r.text)
	}
	// With Content-Length; one of the two already stored (identical: OK).
	body, ct = stowBody(t, slices[1:3])
	if r := ts.stow(t, "/studies", bytes.NewReader(body), ct, int64(len(body))); r.code != http.StatusOK || len(r.stored) != 2 {
		t.Fatalf("STOW-RS with Content-Length: %d %s", r.code, r.text)
	}
	if n := ts.count(t); n != 3 {
		t.Fatalf("%d instances stored, want 3", n)
	}

	// A study target: an instance of another study fails (A900), the
	// rest is stored: 202.
	other := ctPhantom(t, 2, 1)[0]
	ins, _ := ts.st.Work().StudyInstances(context.Background(), studyOf(t, ts, sopUID(t, slices[0])))
	study := ins[0].StudyInstanceUID
	body, ct = stowBody(t, [][]byte{slices[3], other})
	r := ts.stow(t, "/studies/"+study, bytes.NewReader(body), ct, int64(len(body)))
	if r.code != http.StatusAccepted || len(r.stored) != 1 || r.failed[sopUID(t, other)] != 0xA900 {
		t.Fatalf("STOW-RS to a study with a stranger: %d %+v %s", r.code, r, r.text)
	}
	// Nothing stored at all: 409.
	body, ct = stowBody(t, [][]byte{other})
	if r := ts.stow(t, "/studies/"+study, bytes.NewReader(body), ct, int64(len(body))); r.code != http.StatusConflict || len(r.stored) != 0 {
		t.Fatalf("STOW-RS of only a stranger: %d %s", r.code, r.text)
	}
	if n := ts.count(t); n != 4 {
		t.Fatalf("%d instances stored, want 4 (the stranger never)", n)
	}
}

func studyOf(t *testing.T, ts *testServer, sop string) string {
	t.Helper()
	in, err := ts.st.Instance(context.Background(), sop)
	if err != nil {
		t.Fatal(err)
	}
	return in.StudyInstanceUID
}

// TestSTOWBadInput: each bad request gets its status, stores nothing
// partial, and the server goes on serving.
func TestSTOWBadInput(t *testing.T) {
	ts := newTestServer(t, Config{MaxRequestBytes: 4 << 20, MaxParts: 3})
	slice := ctPhantom(t, 3, 1)[0]
	good, goodCT := stowBody(t, [][]byte{slice})
	truncated := good[:len(good)/2]
	notDICOM, notCT := stowBody(t, [][]byte{[]byte("this is not DICOM at all, just text that is long enough to be read")})
	wrongType, wrongCT := stowBody(t, [][]byte{slice}, "image/jpeg")
	many, manyCT := stowBody(t, [][]byte{slice, slice, slice, slice})
	for _, tc := range []struct {
		name   string
		body   []byte
		ct     string
		length int64
		want   int
	}{
		{"not multipart", good, "application/dicom", -1, http.StatusUnsupportedMediaType},
		{"json metadata", good, `multipart/related; type="application/dicom+json"; boundary=x`, -1, http.StatusUnsupportedMediaType},
		{"no boundary", good, `multipart/related; type="application/dicom"`, -1, http.StatusBadRequest},
		{"garbage", []byte("garbage garbage garbage"), goodCT, -1, http.StatusBadRequest},
		{"truncated", truncated, goodCT, -1, http.StatusBadRequest},
		{"not DICOM", notDICOM, notCT, -1, http.StatusConflict},
		{"part not application/dicom", wrongType, wrongCT, -1, http.StatusConflict},
		{"too many parts", many, manyCT, -1, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			before := ts.count(t)
			r := ts.stow(t, "/studies", body, tc.ct, tc.length)
			if r.code != tc.want {
				t.Errorf("status %d (%s), want %d", r.code, strings.TrimSpace(r.text), tc.want)
			}
			if tc.name != "too many parts" {
				if n := ts.count(t); n != before {
					t.Errorf("%d instances stored by a bad request", n-before)
				}
			}
		})
	}
	// A huge declared length is refused before a byte of the body is read.
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s/studies HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", Prefix, goodCT, int64(1)<<40)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a declared 1 TiB body: %v %v; want 413", resp, err)
	}
	// Still healthy.
	if r := ts.stow(t, "/studies", bytes.NewReader(good), goodCT, int64(len(good))); r.code != http.StatusOK {
		t.Fatalf("a good request after the bad ones: %d %s", r.code, r.text)
	}
}
