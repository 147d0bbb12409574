package dicomweb

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
)

// qidoGet runs one search; it fails the test on a transport error.
func qidoGet(t *testing.T, ts *testServer, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+Prefix+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// qidoSearch runs a search that must succeed, and decodes its results.
func qidoSearch(t *testing.T, ts *testServer, path string) []dicomjson.Dataset {
	t.Helper()
	resp, body := qidoGet(t, ts, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != MediaDICOMJSON {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	var out []dicomjson.Dataset
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return out
}

// first is an attribute's first value ("" when absent or empty).
func first(d dicomjson.Dataset, tag uint32) any {
	a := d[dicomjson.Key(tag)]
	if a == nil || len(a.Value) == 0 {
		return ""
	}
	return a.Value[0]
}

// column is the first value of tag in every result.
func column(ds []dicomjson.Dataset, tag uint32) []any {
	out := []any{}
	for _, d := range ds {
		out = append(out, first(d, tag))
	}
	return out
}

func readSample(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		t.Skipf("pydicom sample %s not installed (apt install python3-pydicom)", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// qidoFixture: two phantom head CTs (3 and 2 slices) and pydicom's
// CT_small, stored in that order.
type qidoFixture struct {
	ts         *testServer
	ct1, ct2   string // phantom Study Instance UIDs
	small      string // CT_small's
	smallPath  string // its instance's path under Prefix
	series1UID string
}

const (
	ctSmallStudy    = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
	ctSmallSeries   = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
	ctSmallInstance = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
)

func newQidoFixture(t *testing.T, cfg Config) qidoFixture {
	t.Helper()
	small := readSample(t, peertest.PydicomTestFiles, "CT_small.dcm")
	ts := newTestServer(t, cfg)
	ts.put(t, ctPhantom(t, 1, 3)...)
	ts.put(t, ctPhantom(t, 2, 2)...)
	ts.put(t, small)
	f := qidoFixture{
		ts:    ts,
		ct1:   phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 1, Slices: 3}.StudyInstanceUID(),
		ct2:   phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 2, Slices: 2}.StudyInstanceUID(),
		small: ctSmallStudy,
	}
	f.smallPath = "/studies/" + ctSmallStudy + "/series/" + ctSmallSeries + "/instances/" + ctSmallInstance
	se := qidoSearch(t, ts, "/studies/"+f.ct1+"/series")
	if len(se) != 1 {
		t.Fatalf("phantom 1 has %d series, want 1", len(se))
	}
	f.series1UID = first(se[0], 0x0020000E).(string)
	return f
}

// TestQidoStudyShape: a study result in full, CT_small's: every required
// attribute with its VR, PN as a dicomjson.PersonName object, numbers as numbers,
// Retrieve URL absolute.
func TestQidoStudyShape(t *testing.T) {
	f := newQidoFixture(t, Config{})
	got := qidoSearch(t, f.ts, "/studies?StudyInstanceUID="+f.small)
	if len(got) != 1 {
		t.Fatalf("%d results, want 1", len(got))
	}
	// Values as pydicom reads CT_small.dcm.
	want := dicomjson.Dataset{}
	want.Set(0x00080005, "CS", "ISO_IR 192") // stored ISO_IR 100, returned decoded
	want.Set(0x00080020, "DA", "20040119")
	want.Set(0x00080030, "TM", "072730")
	want.Set(0x00080050, "SH")
	want.Set(0x00080056, "CS", "ONLINE")
	want.Set(0x00080061, "CS", "CT")
	want.Set(0x00080090, "PN")
	want.Set(0x00081190, "UR", f.ts.URL+Prefix+"/studies/"+f.small)
	want.Set(0x00100010, "PN", "CompressedSamples^CT1")
	want.Set(0x00100020, "LO", "1CT1")
	want.Set(0x00100030, "DA")
	want.Set(0x00100040, "CS", "O")
	want.Set(0x0020000D, "UI", f.small)
	want.Set(0x00200010, "SH", "1CT1")
	want.Set(0x00201206, "IS", "1")
	want.Set(0x00201208, "IS", "1")
	// Through JSON, as a client sees it.
	b, _ := json.Marshal(want)
	var wantJSON dicomjson.Dataset
	if err := json.Unmarshal(b, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantJSON, got[0]); diff != "" {
		t.Errorf("study (-want +got)\n%s", diff)
	}
	// The wire form of a name and a count.
	_, body := qidoGet(t, f.ts, "/studies?StudyInstanceUID="+f.small)
	for _, frag := range []string{`"00100010":{"vr":"PN","Value":[{"Alphabetic":"CompressedSamples^CT1"}]}`,
		`"00201208":{"vr":"IS","Value":[1]}`, `"00080050":{"vr":"SH"}`} {
		if !strings.Contains(string(body), frag) {
			t.Errorf("body lacks %s:\n%s", frag, body)
		}
	}
}

func TestQidoStudies(t *testing.T) {
	f := newQidoFixture(t, Config{})
	all := qidoSearch(t, f.ts, "/studies")
	if diff := cmp.Diff([]any{f.ct1, f.ct2, f.small}, column(all, 0x0020000D)); diff != "" {
		t.Fatalf("studies (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]any{1.0, 1.0, 1.0}, column(all, 0x00201206)); diff != "" {
		t.Errorf("series counts (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]any{3.0, 2.0, 1.0}, column(all, 0x00201208)); diff != "" {
		t.Errorf("instance counts (-want +got)\n%s", diff)
	}
	if pn := first(all[0], 0x00100010); !cmp.Equal(pn, map[string]any{"Alphabetic": "PHANTOM^CTHEAD^1"}) {
		t.Errorf("phantom 1 PatientName = %v", pn)
	}
	for _, tc := range []struct {
		query string
		want  []any
	}{
		{"PatientID=PH-ct-head-2", []any{f.ct2}},
		{"00100020=PH-ct-head-2", []any{f.ct2}},
		{"PatientName=phantom*", []any{f.ct1, f.ct2}},
		{"PatientName=PHANTOM%5ECTHEAD%5E?", []any{f.ct1, f.ct2}},
		{"PatientName=CompressedSamples^CT1", []any{f.small}},
		{"StudyDate=20040101-20041231", []any{f.small}},
		{"StudyDate=20040119-", []any{f.small}},
		{"StudyDate=-20011231", []any{f.ct1, f.ct2}}, // the phantoms' are in 2001
		{"StudyInstanceUID=" + f.ct2 + "," + f.small, []any{f.ct2, f.small}},
		{"StudyInstanceUID=" + f.ct1 + "&StudyInstanceUID=" + f.small, []any{f.ct1, f.small}},
		{"ModalitiesInStudy=CT&limit=2", []any{f.ct1, f.ct2}},
		{"limit=1&offset=1", []any{f.ct2}},
		{"offset=3", []any{}},
		{"PatientID=nobody", []any{}},
		{"PatientID=" + url.QueryEscape("'; DROP TABLE study; --"), []any{}},
		{"PatientID=" + url.QueryEscape("' OR 1=1 --"), []any{}},
		{"fuzzymatching=true&PatientID=1CT1", []any{f.small}},
	} {
		got := qidoSearch(t, f.ts, "/studies?"+tc.query)
		if diff := cmp.Diff(tc.want, column(got, 0x0020000D)); diff != "" {
			t.Errorf("?%s (-want +got)\n%s", tc.query, diff)
		}
	}
	if n := len(qidoSearch(t, f.ts, "/studies")); n != 3 {
		t.Errorf("after the injection-looking keys: %d studies, want 3", n)
	}
	// No match: 200 and an empty array.
	if resp, body := qidoGet(t, f.ts, "/studies?PatientID=nobody"); resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("no match: %s %q", resp.Status, body)
	}
}

// TestQidoIncludeField: includefield adds indexed attributes by keyword,
// tag, or all; one the index does not hold is left out; matching keys
// are returned.
func TestQidoIncludeField(t *testing.T) {
	f := newQidoFixture(t, Config{})
	has := func(query string, tag uint32) bool {
		t.Helper()
		got := qidoSearch(t, f.ts, "/studies?StudyInstanceUID="+f.ct1+"&"+query)
		if len(got) != 1 {
			t.Fatalf("?%s: %d results", query, len(got))
		}
		return got[0][dicomjson.Key(tag)] != nil
	}
	for _, tc := range []struct {
		query string
		tag   uint32
		want  bool
	}{
		{"", 0x00081030, false},
		{"includefield=StudyDescription", 0x00081030, true},
		{"includefield=00081030", 0x00081030, true},
		{"includefield=00080020,00081030", 0x00081030, true},
		{"includefield=all", 0x00081030, true},
		{"includefield=all", 0x00080060, false},             // Modality: below the study level
		{"includefield=InstitutionName", 0x00080080, false}, // not indexed: left out
		{"StudyDescription=*", 0x00081030, true},            // a matching key
	} {
		if got := has(tc.query, tc.tag); got != tc.want {
			t.Errorf("?%s: %08X present = %v, want %v", tc.query, tc.tag, got, tc.want)
		}
	}
}

func TestQidoSeriesAndInstances(t *testing.T) {
	f := newQidoFixture(t, Config{})
	base := f.ts.URL + Prefix

	se := qidoSearch(t, f.ts, "/studies/"+f.ct1+"/series")
	if got := first(se[0], 0x00201209); got != 3.0 {
		t.Errorf("NumberOfSeriesRelatedInstances = %v, want 3", got)
	}
	if got, want := first(se[0], 0x00081190), base+"/studies/"+f.ct1+"/series/"+f.series1UID; got != want {
		t.Errorf("series RetrieveURL = %v, want %v", got, want)
	}
	if se[0][dicomjson.Key(0x00100010)] != nil {
		t.Error("series under a study carries the study's PatientName")
	}
	all := qidoSearch(t, f.ts, "/series")
	if len(all) != 3 || all[2][dicomjson.Key(0x00100010)] == nil || first(all[2], 0x00201208) != 1.0 {
		t.Errorf("series of all studies: %d, want 3 with the study attributes: %v", len(all), all)
	}
	if got := qidoSearch(t, f.ts, "/series?Modality=CT&PatientID=1CT1"); len(got) != 1 || first(got[0], 0x0020000E) != ctSmallSeries {
		t.Errorf("/series?Modality=CT&PatientID=1CT1 = %v", got)
	}

	in := qidoSearch(t, f.ts, "/studies/"+f.ct1+"/series/"+f.series1UID+"/instances")
	if diff := cmp.Diff([]any{1.0, 2.0, 3.0}, column(in, 0x00200013)); diff != "" {
		t.Errorf("instance numbers (-want +got)\n%s", diff)
	}
	if in[0][dicomjson.Key(0x00080060)] != nil {
		t.Error("instances under a series carry its Modality")
	}
	if got := qidoSearch(t, f.ts, "/studies/"+f.ct1+"/instances?InstanceNumber=2"); len(got) != 1 || first(got[0], 0x00080060) != "CT" {
		t.Errorf("instances of a study: %v, want one carrying its series' Modality", got)
	}
	small := qidoSearch(t, f.ts, "/instances?SOPInstanceUID="+ctSmallInstance)
	if len(small) != 1 {
		t.Fatalf("/instances?SOPInstanceUID: %d results", len(small))
	}
	for tag, want := range map[uint32]any{
		0x00080016: "1.2.840.10008.5.1.4.1.1.2", 0x0020000D: ctSmallStudy, 0x0020000E: ctSmallSeries,
		0x00280010: 128.0, 0x00280011: 128.0, 0x00280008: "", 0x00081190: base + f.smallPath,
		0x00100020: "1CT1", 0x00080060: "CT",
	} {
		if got := first(small[0], tag); got != want {
			t.Errorf("CT_small instance %08X = %v, want %v", tag, got, want)
		}
	}
	if vr := small[0][dicomjson.Key(0x00280010)].VR; vr != "US" {
		t.Errorf("Rows VR %q", vr)
	}
	if got := qidoSearch(t, f.ts, "/studies/"+f.ct2+"/series/"+f.series1UID+"/instances"); len(got) != 0 {
		t.Errorf("a series of another study: %d instances, want 0", len(got))
	}
}

// TestQidoCharset: pydicom's chrH31 (ISO 2022 IR 87) comes back as UTF-8
// in its three component groups.
func TestQidoCharset(t *testing.T) {
	b := readSample(t, filepath.Join(filepath.Dir(peertest.PydicomTestFiles), "charset_files"), "chrH31.dcm")
	ts := newTestServer(t, Config{})
	ts.put(t, b)
	got := qidoSearch(t, ts, "/studies?PatientName=yamada*")
	if len(got) != 1 {
		t.Fatalf("%d results, want 1", len(got))
	}
	want := map[string]any{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
	if diff := cmp.Diff(want, first(got[0], 0x00100010)); diff != "" {
		t.Errorf("PatientName (-want +got)\n%s", diff)
	}
	if got := first(got[0], 0x00080005); got != "ISO_IR 192" {
		t.Errorf("SpecificCharacterSet = %v", got)
	}
}

// TestQidoBadRequests: 400 with a message naming the key, never the
// value; 406 for a media type other than JSON.
func TestQidoBadRequests(t *testing.T) {
	f := newQidoFixture(t, Config{})
	for _, tc := range []struct {
		path string
		code int
		msg  string // in the body
	}{
		{"/studies?Foo=bar", 400, `unsupported query key "Foo"`},
		{"/studies?InstitutionName=X", 400, "unsupported query key"},
		{"/studies?00400275.00401001=X", 400, "sequence paths"},
		{"/studies?StudyDate=19990231", 400, "StudyDate"},
		{"/studies?StudyDate=2020", 400, "StudyDate"},
		{"/studies?StudyDate=20201231-20200101", 400, "StudyDate"},
		{"/studies?StudyTime=2500", 400, "StudyTime"},
		{"/studies?SOPInstanceUID=1.2.3", 400, "SOPInstanceUID is not a key at the study level"},
		{"/studies?StudyInstanceUID=1.2.*", 400, "StudyInstanceUID"},
		{"/studies?NumberOfStudyRelatedInstances=3", 400, "return key only"},
		{"/studies?PatientID=a&PatientID=b", 400, "more than once"},
		{"/studies?limit=x", 400, "limit"},
		{"/studies?limit=0", 400, "limit"},
		{"/studies?offset=-1", 400, "offset"},
		{"/studies?PatientID=%zz", 400, "malformed query"},
		{"/studies/1.02.3/series", 400, "study in the path"},
		{"/studies/" + f.ct1 + "/series/x/instances", 400, "series in the path"},
		{"/instances?InstanceNumber=one", 400, "InstanceNumber"},
	} {
		resp, body := qidoGet(t, f.ts, tc.path)
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.msg) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, resp.StatusCode, body, tc.code, tc.msg)
		}
		if strings.Contains(string(body), "19990231") {
			t.Errorf("GET %s: the message quotes the value: %q", tc.path, body)
		}
	}
	if resp, _ := qidoGet(t, f.ts, "/studies", "Accept", "application/dicom+xml"); resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("Accept: application/dicom+xml: %s, want 406", resp.Status)
	}
	if resp, _ := qidoGet(t, f.ts, "/studies", "Accept", "application/json"); resp.StatusCode != http.StatusOK {
		t.Errorf("Accept: application/json: %s, want 200", resp.Status)
	}
}

// TestQidoMaxResults: MaxResults caps any limit; a response cut there
// says so in a Warning (PS3.18 8.3.4.4), one cut by the client's own
// limit does not.
func TestQidoMaxResults(t *testing.T) {
	f := newQidoFixture(t, Config{MaxResults: 2})
	for _, tc := range []struct {
		query string
		n     int
		warn  bool
	}{
		{"", 2, true},
		{"?limit=10", 2, true},
		{"?limit=2", 2, false},
		{"?limit=1", 1, false},
		{"?offset=1", 2, false},
		{"?offset=2&limit=1", 1, false},
	} {
		resp, body := qidoGet(t, f.ts, "/studies"+tc.query)
		var got []dicomjson.Dataset
		if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %s %v", tc.query, resp.Status, err)
		}
		if warn := resp.Header.Get("Warning") != ""; len(got) != tc.n || warn != tc.warn {
			t.Errorf("/studies%s: %d results, warning %v; want %d, %v", tc.query, len(got), warn, tc.n, tc.warn)
		}
	}
}
