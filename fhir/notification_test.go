package fhir

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/store"
)

func TestDateTime(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tt := range []struct{ da, tm, want string }{
		{"20240131", "142530", "2024-01-31T14:25:30+01:00"},
		{"20240131", "142530.123456", "2024-01-31T14:25:30+01:00"},
		{"20240131", "1425", "2024-01-31T14:25:00+01:00"},
		{"20240131", "14", "2024-01-31T14:00:00+01:00"},
		{"20240131", "", "2024-01-31"},
		{"20240131", "99", "2024-01-31"},
		{"20240131", "14253", "2024-01-31"},
		{"2024", "1200", ""},
		{"", "1200", ""},
	} {
		if got := dateTime(tt.da, tt.tm, cet); got != tt.want {
			t.Errorf("dateTime(%q, %q) = %q, want %q", tt.da, tt.tm, got, tt.want)
		}
	}
}

func TestPatientData(t *testing.T) {
	for _, tt := range []struct {
		in   store.Instance
		want PatientData
	}{
		{store.Instance{PatientID: " 123 ", PatientName: "Doe^John Paul^Q^Dr^Jr", PatientBirthDate: "19700102", PatientSex: "M"},
			PatientData{ID: "123", Family: "Doe", Given: []string{"John", "Paul", "Q"}, Prefix: "Dr", Suffix: "Jr", BirthDate: "1970-01-02", Gender: "male"}},
		{store.Instance{PatientID: "9", PatientName: "Yamada^Tarou=山田^太郎", PatientSex: "F", PatientBirthDate: "1970"},
			PatientData{ID: "9", Family: "Yamada", Given: []string{"Tarou"}, Gender: "female"}},
		{store.Instance{PatientID: "9", PatientName: "M\xfcller^J", SpecificCharacterSet: "ISO_IR 100", PatientSex: "O"},
			PatientData{ID: "9", Family: "Müller", Given: []string{"J"}, Gender: "other"}},
		{store.Instance{PatientID: "9", PatientSex: "U"}, PatientData{ID: "9"}},
	} {
		got := patientData(tt.in, dcm.ParseCharset(tt.in.SpecificCharacterSet))
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("patientData(%q) (-want +got):\n%s", tt.in.PatientName, d)
		}
	}
}

func TestIdentQuery(t *testing.T) {
	for _, tt := range []struct {
		id   ident
		want string
	}{
		{studyIdent("1.2.3"), "identifier=urn:dicom:uid|urn:oid:1.2.3"},
		{ident{"urn:x", `a|b,c$d\e`}, `identifier=urn:x|a\|b\,c\$d\\e`},
	} {
		if got := tt.id.query(); got != tt.want {
			t.Errorf("query() = %q, want %q", got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("ab€cd", 4); got != "ab…" {
		t.Errorf("truncate on a rune: %q", got)
	}
	if got := truncate("abc", 4); got != "abc" {
		t.Errorf("truncate short: %q", got)
	}
}

func TestStudyNotification(t *testing.T) {
	one := func(mod func(*store.Instance)) []store.Instance {
		in := store.Instance{StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2.1", SOPInstanceUID: "1.2.1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
			PatientID: "P", Modality: "CT", SeriesNumber: "2", InstanceNumber: "1", StudyDate: "20240101", AccessionNumber: "A1 ", BodyPartExamined: "HEAD"}
		mod(&in)
		return []store.Instance{in}
	}
	for name, ins := range map[string][]store.Instance{
		"none":        nil,
		"no study":    one(func(in *store.Instance) { in.StudyInstanceUID = "" }),
		"no patient":  one(func(in *store.Instance) { in.PatientID = " " }),
		"two studies": append(one(func(*store.Instance) {}), one(func(in *store.Instance) { in.StudyInstanceUID = "1.3" })...),
	} {
		if _, err := StudyNotification(ins, testWADO); !errors.Is(err, ErrNotification) {
			t.Errorf("%s: %v, want ErrNotification", name, err)
		}
	}
	// Two series out of order, one instance unnumbered: sorted by number.
	ins := append(one(func(in *store.Instance) { in.SeriesInstanceUID, in.SeriesNumber = "1.2.9", "1" }),
		one(func(in *store.Instance) { in.SOPInstanceUID, in.InstanceNumber = "1.2.1.3", "" })[0],
		one(func(*store.Instance) {})[0])
	n, err := StudyNotification(ins, testWADO)
	if err != nil {
		t.Fatal(err)
	}
	num := func(i int) *int { return &i }
	ct := "1.2.840.10008.5.1.4.1.1.2"
	want := Notification{Kind: notifyStudy, Endpoint: testWADO, Patient: PatientData{ID: "P"},
		Study: StudyData{UID: "1.2", Accession: "A1", Started: "2024-01-01", Series: []SeriesData{
			{UID: "1.2.9", Number: num(1), Modality: "CT", BodyPart: "HEAD", Instances: []InstanceData{{UID: "1.2.1.1", SOPClass: ct, Number: num(1)}}},
			{UID: "1.2.1", Number: num(2), Modality: "CT", BodyPart: "HEAD", Instances: []InstanceData{{UID: "1.2.1.1", SOPClass: ct, Number: num(1)}, {UID: "1.2.1.3", SOPClass: ct}}},
		}}}
	if d := cmp.Diff(want, n); d != "" {
		t.Errorf("StudyNotification (-want +got):\n%s", d)
	}

	res := &inference.Result{Model: "m", Version: "1", Findings: []inference.Finding{{Label: "x"}, {Label: "x"}}}
	if _, err := ReportNotification(ins, res, Algorithm{}, 0, testWADO); !errors.Is(err, ErrNotification) {
		t.Errorf("duplicate labels: %v, want ErrNotification", err)
	}
	res.Findings = nil
	if _, err := ReportNotification(ins, res, Algorithm{}, 0, testWADO); !errors.Is(err, ErrNotification) {
		t.Errorf("no findings: %v, want ErrNotification", err)
	}
	res = &inference.Result{Model: "m", Version: "1", StudyInstanceUID: "9.9", Findings: []inference.Finding{{Label: "x"}}}
	if _, err := ReportNotification(ins, res, Algorithm{}, 0, testWADO); !errors.Is(err, ErrNotification) {
		t.Errorf("another study: %v, want ErrNotification", err)
	}
}
