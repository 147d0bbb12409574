package deident

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/internal/dsbuild"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
)

func TestTableRows(t *testing.T) {
	seen := map[tag.Tag]string{}
	for _, r := range Table() {
		if prev, dup := seen[r.Tag]; dup {
			t.Errorf("%s twice: %s and %s", tag.DebugString(r.Tag), prev, r.Name)
		}
		seen[r.Tag] = r.Name
		if r.Basic == None || r.Basic == C {
			t.Errorf("%s: Basic Profile action %q", r.Name, r.Basic)
		}
		// The supported option columns never disagree on a row (resolve
		// relies on it); the two date options are exclusive (New).
		var got []Action
		for _, a := range []Action{r.UIDs, r.Device, r.Institution, r.PatientChars, r.FullDates, r.CleanDesc} {
			if a != None && !slices.Contains(got, a) {
				got = append(got, a)
			}
		}
		if len(got) > 1 {
			t.Errorf("%s: option columns disagree: %v", r.Name, got)
		}
		if g := r.Tag.Group; g%2 == 1 || g&0xFF00 == 0x5000 || g&0xFF00 == 0x6000 {
			t.Errorf("%s: a range row, handled in the code", r.Name)
		}
	}
	if len(seen) != len(profileTable) {
		t.Errorf("%d distinct tags of %d rows", len(seen), len(profileTable))
	}
}

func TestResolve(t *testing.T) {
	row := func(tg tag.Tag) *Rule { return &profileTable[rowIndex(tg)] }
	tests := []struct {
		name string
		opt  Options
		tag  tag.Tag
		want step
	}{
		{"U", Options{}, tag.SOPInstanceUID, stepUID},
		{"U retained", Options{RetainUIDs: true}, tag.SOPInstanceUID, stepKeep},
		{"X/Z/D → D", Options{}, tag.InstitutionName, stepDummy},
		{"X/Z → Z", Options{}, tag.AcquisitionDate, stepZero},
		{"X/Z/U* → kept, items cleaned", Options{}, tag.ReferencedImageSequence, stepKeep},
		{"X stays X under Retain UIDs", Options{RetainUIDs: true}, tag.ReferencedPatientSequence, stepRemove},
		{"C of modified dates shifts", Options{RetainLongModifiedDates: true}, tag.StudyDate, stepShift},
		{"C of clean descriptors falls back to X", Options{CleanDescriptors: true}, tag.StudyDescription, stepRemove},
		{"C of clean descriptors falls back to X/D → D", Options{CleanDescriptors: true}, tag.ProtocolName, stepDummy},
		{"C of patient characteristics falls back to X", Options{RetainPatientCharacteristics: true}, tag.Allergies, stepRemove},
		{"unsupported Clean Structured Content: X/Z", Options{}, tag.AcquisitionContextSequence, stepZero},
	}
	for _, tc := range tests {
		if got := tc.opt.resolve(row(tc.tag)); got != tc.want {
			t.Errorf("%s: step %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	m := openMap(t, t.TempDir())
	if _, err := New(Options{RetainLongFullDates: true, RetainLongModifiedDates: true}, m); !errors.Is(err, ErrOptions) {
		t.Errorf("both date options: %v, want ErrOptions", err)
	}
	if _, err := New(Options{}, nil); !errors.Is(err, ErrNoMap) {
		t.Errorf("no map: %v, want ErrNoMap", err)
	}
}

func TestNewUID(t *testing.T) {
	a, b := []byte("secret-a"), []byte("secret-b")
	u := newUID(a, "1.2.3.4")
	if !regexp.MustCompile(`^2\.25\.[1-9][0-9]*$`).MatchString(u) || len(u) > 64 {
		t.Errorf("newUID = %q: want 2.25.<decimal without leading zero>, at most 64 characters", u)
	}
	if newUID(a, "1.2.3.4") != u || newUID(b, "1.2.3.4") == u || newUID(a, "1.2.3.5") == u {
		t.Error("newUID is not a keyed function of the UID")
	}
}

// instance is a minimal CT instance of one series; refs become a
// Referenced Image Sequence.
func ctInstance(t testing.TB, study, series, sop string, refs ...string) []byte {
	t.Helper()
	b := &dsbuild.Builder{}
	b.FileMeta(ctImageStorage, sop, "1.2.3", "TEST")
	b.Str(tag.SOPClassUID, ctImageStorage)
	b.Str(tag.SOPInstanceUID, sop)
	b.Str(tag.StudyInstanceUID, study)
	b.Str(tag.SeriesInstanceUID, series)
	b.Str(tag.FrameOfReferenceUID, study+".9")
	b.Str(tag.Modality, "CT")
	b.Str(tag.PatientName, "DOE^JANE")
	b.Str(tag.PatientID, "MRN123")
	b.Str(tag.AccessionNumber, "ACC9")
	var items []*dsbuild.Builder
	for _, r := range refs {
		it := &dsbuild.Builder{}
		it.Str(tag.ReferencedSOPClassUID, ctImageStorage)
		it.Str(tag.ReferencedSOPInstanceUID, r)
		items = append(items, it)
	}
	if len(items) > 0 {
		b.Seq(tag.ReferencedImageSequence, items...)
	}
	out, err := dsbuild.Encode(b, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func parseOut(t *testing.T, b []byte) dicom.Dataset {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestUIDConsistency(t *testing.T) {
	const study, series = "1.2.826.0.1.3680043.10.1", "1.2.826.0.1.3680043.10.1.2"
	sop1, sop2 := series+".1", series+".2"
	in1, in2 := ctInstance(t, study, series, sop1), ctInstance(t, study, series, sop2, sop1)
	dir := t.TempDir()
	run := func(mapDir string) (Record, Record, string) {
		m, err := OpenMap(mapDir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		d := newDeid(t, Options{}, m)
		_, r1 := deidBytes(t, d, in1)
		out2, r2 := deidBytes(t, d, in2)
		ds := parseOut(t, out2)
		ref, err := ds.FindElementByTagNested(tag.ReferencedSOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		return r1, r2, dicom.MustGetStrings(ref.Value)[0]
	}
	r1, r2, ref := run(filepath.Join(dir, "a"))
	if r1.StudyInstanceUID != r2.StudyInstanceUID || r1.SeriesInstanceUID != r2.SeriesInstanceUID {
		t.Errorf("one series became %v and %v", r1, r2)
	}
	if r1.StudyInstanceUID == study || r1.SOPInstanceUID == sop1 || r1.SOPInstanceUID == r2.SOPInstanceUID {
		t.Errorf("UIDs not replaced: %+v %+v", r1, r2)
	}
	if ref != r1.SOPInstanceUID {
		t.Errorf("Referenced SOP Instance UID %s, want the referenced instance's new UID %s", ref, r1.SOPInstanceUID)
	}
	if r1.PatientPseudonym != r2.PatientPseudonym || r1.PatientPseudonym == "MRN123" {
		t.Errorf("patient pseudonyms %q %q", r1.PatientPseudonym, r2.PatientPseudonym)
	}
	again1, again2, againRef := run(filepath.Join(dir, "a"))
	if diff := cmp.Diff([]any{r1, r2, ref}, []any{again1, again2, againRef}); diff != "" {
		t.Errorf("re-run with the same map (-first +again):\n%s", diff)
	}
	other1, _, _ := run(filepath.Join(dir, "b"))
	if other1.StudyInstanceUID == r1.StudyInstanceUID || other1.SOPInstanceUID == r1.SOPInstanceUID || other1.PatientPseudonym == r1.PatientPseudonym {
		t.Errorf("a new map (new secret) gave the same identifiers: %+v", other1)
	}
}

func TestMapReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deident")
	m := openMap(t, dir)
	d := newDeid(t, Options{}, m)
	_, rec := deidBytes(t, d, ctInstance(t, "1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1"))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.File(bytes.NewReader(nil), 0, &bytes.Buffer{}); err == nil {
		t.Error("File after the map was closed succeeded")
	}
	m2 := openMap(t, dir)
	for pseud, want := range map[string]string{
		rec.PatientPseudonym:           "MRN123",
		"ANON^" + rec.PatientPseudonym: "DOE^JANE",
		rec.SOPInstanceUID:             "1.2.3.1.1.1",
		rec.StudyInstanceUID:           "1.2.3.1",
		rec.SeriesInstanceUID:          "1.2.3.1.1",
	} {
		if got, ok := m2.Lookup(pseud); !ok || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", pseud, got, ok, want)
		}
	}
	if p, ok := m2.Pseudonym(KindPatientID, "MRN123"); !ok || p != rec.PatientPseudonym {
		t.Errorf("Pseudonym(patient-id) = %q, %v", p, ok)
	}
	if _, ok := m2.Lookup("NOT-ISSUED"); ok {
		t.Error("Lookup of a value never issued succeeded")
	}
	for name, want := range map[string]os.FileMode{".": 0o700, secretFile: 0o600, mapFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
}

func TestMapDamage(t *testing.T) {
	dir := t.TempDir()
	m := openMap(t, dir)
	if err := m.record([]Pair{{KindPatientID, "A", "PA"}}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	p := filepath.Join(dir, mapFile)
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"k":"patient-id","o":"B"`) // a crash in mid-append
	f.Close()
	m = openMap(t, dir)
	if err := m.record([]Pair{{KindPatientID, "C", "PC"}}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = openMap(t, dir)
	for pseud, want := range map[string]string{"PA": "A", "PC": "C"} {
		if got, ok := m.Lookup(pseud); !ok || got != want {
			t.Errorf("after a torn line: Lookup(%s) = %q, %v", pseud, got, ok)
		}
	}
	m.Close()
	if err := os.WriteFile(p, []byte("{\"k\":\"patient-id\",\"o\":\"A\",\"p\":\"PA\"}\nSECRET^PATIENT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenMap(dir)
	if !errors.Is(err, ErrMapCorrupt) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("corrupt line: %v, want ErrMapCorrupt without the line's content", err)
	}
}

func TestSafePixels(t *testing.T) {
	tests := []struct {
		modality, sopClass, burnedIn string
		refused                      bool
	}{
		{"CT", ctImageStorage, "", false},
		{"CT", ctImageStorage, "YES", true},
		{"DX", "1.2.840.10008.5.1.4.1.1.1.1", "NO", false},
		{"US", "1.2.840.10008.5.1.4.1.1.6.1", "", true},
		{"US", "1.2.840.10008.5.1.4.1.1.6.1", "NO", false},
		{"", "1.2.840.10008.5.1.4.1.1.7", "", true},        // secondary capture
		{"OT", "1.2.840.10008.5.1.4.1.1.7", "", true},      // secondary capture
		{"XC", "1.2.840.10008.5.1.4.1.1.77.1.4", "", true}, // VL photographic
		{"MR", "1.2.840.10008.5.1.4.1.1.4", "yes ", true},
	}
	for _, tc := range tests {
		err := SafePixels(tc.modality, tc.sopClass, tc.burnedIn)
		if errors.Is(err, ErrBurnedIn) != tc.refused {
			t.Errorf("SafePixels(%q, %q, %q) = %v, refused want %v", tc.modality, tc.sopClass, tc.burnedIn, err, tc.refused)
		}
	}
}

func TestBurnedInRefused(t *testing.T) {
	b := &dsbuild.Builder{}
	b.FileMeta("1.2.840.10008.5.1.4.1.1.6.1", "1.2.3.4", "1.2.3", "TEST")
	b.Str(tag.SOPClassUID, "1.2.840.10008.5.1.4.1.1.6.1")
	b.Str(tag.SOPInstanceUID, "1.2.3.4")
	b.Str(tag.Modality, "US")
	b.Str(tag.PatientName, "DOE^JANE")
	in, err := dsbuild.Encode(b, 512)
	if err != nil {
		t.Fatal(err)
	}
	m := openMap(t, t.TempDir())
	var out bytes.Buffer
	if _, err := newDeid(t, Options{}, m).File(bytes.NewReader(in), int64(len(in)), &out); !errors.Is(err, ErrBurnedIn) || out.Len() != 0 {
		t.Errorf("ultrasound without Burned In Annotation: %v, %d bytes out; want ErrBurnedIn and nothing", err, out.Len())
	}
}

// TestDciodvfy: de-identified phantoms have no dciodvfy error their
// originals lack.
func TestDciodvfy(t *testing.T) {
	peertest.Require(t, "dciodvfy")
	tool, err := peertest.Tool("dciodvfy")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := newDeid(t, Options{}, openMap(t, filepath.Join(dir, "map")))
	for _, spec := range []phantom.Spec{{Kind: phantom.KindCXR, Finding: phantom.None, Seed: 3}, {Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 3, Slices: 2}} {
		insts, err := phantom.Generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, inst := range insts {
			out, _ := deidBytes(t, d, inst.Data)
			before := dciodvfyErrors(t, tool, dir, inst.Data)
			for _, e := range dciodvfyErrors(t, tool, dir, out) {
				if !slices.Contains(before, e) {
					t.Errorf("%s: new dciodvfy error: %s", spec.Kind, e)
				}
			}
		}
	}
}

func dciodvfyErrors(t *testing.T, tool, dir string, data []byte) []string {
	t.Helper()
	p := filepath.Join(dir, "v.dcm")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(tool, p).CombinedOutput() // exit status 1 with errors
	var errs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Error") {
			errs = append(errs, l)
		}
	}
	return errs
}

func FuzzFile(f *testing.F) {
	// Small seeds: the engine slows down on a phantom's pixel data.
	all, _ := everyAttribute(f)
	ct := ctInstance(f, "1.2.3", "1.2.3.4", "1.2.3.4.5", "1.2.3.4.6")
	for _, seed := range [][]byte{ct, all, all[:len(all)/2], ct[:200], nil, []byte("DICM")} {
		f.Add(seed)
	}
	m, err := OpenMap(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	d, err := New(Options{RetainLongModifiedDates: true}, m)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if _, err := d.File(bytes.NewReader(in), int64(len(in)), &out); err == nil {
			if _, err := dicom.Parse(bytes.NewReader(out.Bytes()), int64(out.Len()), nil, dicom.SkipProcessingPixelDataValue()); err != nil {
				t.Errorf("output of an accepted input does not parse: %v", err)
			}
		}
	})
}
