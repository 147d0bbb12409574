package fhir

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/store"
)

// Outbox kinds (store.NewDelivery.Kind) of the two notifications.
const (
	KindImagingStudy = "fhir-imagingstudy"
	KindReport       = "fhir-report"
)

// Notification kinds (Notification.Kind).
const (
	notifyStudy  = "imagingstudy"
	notifyReport = "report"
)

// Notification is one outbox payload: everything needed to write the
// resources, decoded from DICOM when queued, so a delivery does not depend
// on the store still holding the study. It holds patient demographics;
// it is stored like the index itself and never logged.
type Notification struct {
	Kind     string      `json:"kind"`     // "imagingstudy" or "report"
	Endpoint string      `json:"endpoint"` // radgate's DICOMweb base URL
	Patient  PatientData `json:"patient"`
	Study    StudyData   `json:"study"`
	Report   *ReportData `json:"report,omitempty"` // Kind "report" only
}

// PatientData is the DICOM Patient module, in FHIR terms.
type PatientData struct {
	ID        string   `json:"id"` // PatientID, the identifier's value
	Family    string   `json:"family,omitempty"`
	Given     []string `json:"given,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	Suffix    string   `json:"suffix,omitempty"`
	BirthDate string   `json:"birth_date,omitempty"` // YYYY-MM-DD
	Gender    string   `json:"gender,omitempty"`     // male, female, other
}

// StudyData is the study with its series and instances.
type StudyData struct {
	UID         string       `json:"uid"`
	Accession   string       `json:"accession,omitempty"`
	Description string       `json:"description,omitempty"`
	Started     string       `json:"started,omitempty"` // FHIR dateTime
	Series      []SeriesData `json:"series"`
}

// SeriesData is one series.
type SeriesData struct {
	UID         string         `json:"uid"`
	Number      *int           `json:"number,omitempty"`
	Modality    string         `json:"modality"`
	Description string         `json:"description,omitempty"`
	BodyPart    string         `json:"body_part,omitempty"` // Body Part Examined, as sent
	Instances   []InstanceData `json:"instances"`
}

// InstanceData is one instance.
type InstanceData struct {
	UID      string `json:"uid"`
	SOPClass string `json:"sop_class"`
	Number   *int   `json:"number,omitempty"`
}

// ReportData is an inference result with the algorithm that made it.
type ReportData struct {
	Algorithm Algorithm     `json:"algorithm"`
	Task      string        `json:"task,omitempty"`
	Revision  int           `json:"revision"`
	Priority  string        `json:"priority,omitempty"`
	Issued    string        `json:"issued"` // FHIR instant, when queued
	Findings  []FindingData `json:"findings"`
}

// FindingData is one label's study-level answer.
type FindingData struct {
	Label       string  `json:"label"`
	Scheme      string  `json:"scheme,omitempty"` // coding scheme designator: SCT, LN, DCM
	Code        string  `json:"code,omitempty"`
	Meaning     string  `json:"meaning,omitempty"`
	Probability float64 `json:"probability"`
	Threshold   float64 `json:"threshold"`
	Positive    bool    `json:"positive"`
}

// Algorithm is the model that produced a result: it becomes a Device.
type Algorithm struct {
	Name, Version, Manufacturer, SHA256 string
	// TrainedOnPhantoms: the Device carries a note that its output is not
	// for clinical use.
	TrainedOnPhantoms bool
}

// StudyNotification builds the ImagingStudy notification from every
// instance of a study; wadoBase is radgate's DICOMweb base URL, the
// ImagingStudy's Endpoint.
func StudyNotification(ins []store.Instance, wadoBase string) (Notification, error) {
	if wadoBase == "" {
		return Notification{}, fmt.Errorf("%w: no DICOMweb base URL for the Endpoint", ErrNotification)
	}
	if len(ins) == 0 {
		return Notification{}, fmt.Errorf("%w: no instances", ErrNotification)
	}
	first := ins[0]
	if first.StudyInstanceUID == "" {
		return Notification{}, fmt.Errorf("%w: no Study Instance UID", ErrNotification)
	}
	if strings.TrimSpace(first.PatientID) == "" {
		// ImagingStudy.subject is 1..1, and only the identifier can find
		// the Patient.
		return Notification{}, fmt.Errorf("%w: study %s has no Patient ID", ErrNotification, dcm.UIDRef(first.StudyInstanceUID))
	}
	cs := dcm.ParseCharset(first.SpecificCharacterSet)
	n := Notification{
		Kind:     notifyStudy,
		Endpoint: wadoBase,
		Patient:  patientData(first, cs),
		Study: StudyData{
			UID:         first.StudyInstanceUID,
			Accession:   strings.TrimSpace(first.AccessionNumber),
			Description: strings.TrimSpace(cs.Decode(first.StudyDescription)),
			Started:     dateTime(first.StudyDate, first.StudyTime, time.Local),
		},
	}
	bySeries := map[string]int{}
	for _, in := range ins {
		if in.StudyInstanceUID != first.StudyInstanceUID {
			return Notification{}, fmt.Errorf("%w: instances of more than one study", ErrNotification)
		}
		i, ok := bySeries[in.SeriesInstanceUID]
		if !ok {
			ics := dcm.ParseCharset(in.SpecificCharacterSet)
			i = len(n.Study.Series)
			bySeries[in.SeriesInstanceUID] = i
			n.Study.Series = append(n.Study.Series, SeriesData{
				UID:         in.SeriesInstanceUID,
				Number:      unsignedInt(in.SeriesNumber),
				Modality:    strings.TrimSpace(in.Modality),
				Description: strings.TrimSpace(ics.Decode(in.SeriesDescription)),
				BodyPart:    strings.TrimSpace(in.BodyPartExamined),
			})
		}
		se := &n.Study.Series[i]
		se.Instances = append(se.Instances, InstanceData{UID: in.SOPInstanceUID, SOPClass: in.SOPClassUID, Number: unsignedInt(in.InstanceNumber)})
	}
	// A stable order, so the payload of a study does not depend on how the
	// index returned it.
	slices.SortFunc(n.Study.Series, func(a, b SeriesData) int { return cmpNumbered(a.Number, b.Number, a.UID, b.UID) })
	for i := range n.Study.Series {
		slices.SortFunc(n.Study.Series[i].Instances, func(a, b InstanceData) int { return cmpNumbered(a.Number, b.Number, a.UID, b.UID) })
	}
	return n, nil
}

// ReportNotification builds the DiagnosticReport notification of a result
// (revision: the result's revision, part of every identifier, so a revised
// result gets resources of its own).
func ReportNotification(ins []store.Instance, res *inference.Result, alg Algorithm, revision int, wadoBase string) (Notification, error) {
	if res == nil {
		return Notification{}, fmt.Errorf("%w: no result", ErrNotification)
	}
	n, err := StudyNotification(ins, wadoBase)
	if err != nil {
		return Notification{}, err
	}
	if res.StudyInstanceUID != "" && res.StudyInstanceUID != n.Study.UID {
		return Notification{}, fmt.Errorf("%w: the result is of another study", ErrNotification)
	}
	if alg.Name == "" {
		alg.Name = res.Model
	}
	if alg.Version == "" {
		alg.Version = res.Version
	}
	if alg.SHA256 == "" {
		alg.SHA256 = res.SHA256
	}
	if alg.Name == "" || alg.Version == "" {
		return Notification{}, fmt.Errorf("%w: no model name or version", ErrNotification)
	}
	if len(res.Findings) == 0 {
		return Notification{}, fmt.Errorf("%w: the result has no findings", ErrNotification)
	}
	r := &ReportData{Algorithm: alg, Task: res.Task, Revision: revision, Priority: res.Priority,
		Issued: time.Now().UTC().Format(time.RFC3339)}
	seen := map[string]bool{}
	for _, f := range res.Findings {
		if f.Label == "" || seen[f.Label] {
			// The label names the Observation's identifier.
			return Notification{}, fmt.Errorf("%w: finding labels must be present and distinct", ErrNotification)
		}
		seen[f.Label] = true
		r.Findings = append(r.Findings, FindingData{Label: f.Label, Scheme: f.Concept.Scheme, Code: f.Concept.Code,
			Meaning: f.Concept.Meaning, Probability: f.Probability, Threshold: f.Threshold, Positive: f.Positive})
	}
	n.Kind = notifyReport
	n.Report = r
	return n, nil
}

// patientData decodes the Patient module: PN components (PS3.5 6.2,
// family^given^middle^prefix^suffix, alphabetic group only), DA birth date,
// CS sex.
func patientData(in store.Instance, cs dcm.Charset) PatientData {
	p := PatientData{ID: strings.TrimSpace(in.PatientID), BirthDate: date(in.PatientBirthDate)}
	name, _, _ := strings.Cut(cs.Decode(in.PatientName), "=")
	parts := strings.Split(name, "^")
	get := func(i int) string {
		if i < len(parts) {
			return strings.TrimSpace(parts[i])
		}
		return ""
	}
	p.Family, p.Prefix, p.Suffix = get(0), get(3), get(4)
	for _, g := range []string{get(1), get(2)} {
		p.Given = append(p.Given, strings.Fields(g)...)
	}
	switch strings.TrimSpace(in.PatientSex) {
	case "M":
		p.Gender = "male"
	case "F":
		p.Gender = "female"
	case "O":
		p.Gender = "other"
	}
	return p
}

// date turns a DICOM DA (YYYYMMDD) into a FHIR date, "" when invalid.
func date(da string) string {
	t, err := time.Parse("20060102", strings.TrimSpace(da))
	if err != nil {
		return ""
	}
	return t.Format("2006-01-02")
}

// dateTime turns DA and TM into a FHIR dateTime. A FHIR dateTime with a
// time needs a zone, and DICOM's StudyTime has none (Timezone Offset From
// UTC is not indexed): loc, radgate's local zone, is assumed — the
// modalities it serves are on site. Without a usable time it is the date
// alone.
func dateTime(da, tm string, loc *time.Location) string {
	d := date(da)
	if d == "" {
		return ""
	}
	tm, _, _ = strings.Cut(strings.TrimSpace(tm), ".") // fraction: seconds are enough
	if len(tm) < 2 || len(tm)%2 != 0 || len(tm) > 6 {
		return d
	}
	tm += "000000"[len(tm):]
	t, err := time.ParseInLocation("20060102150405", strings.ReplaceAll(d, "-", "")+tm, loc)
	if err != nil {
		return d
	}
	return t.Format(time.RFC3339)
}

// unsignedInt parses an IS as a FHIR unsignedInt; nil when absent,
// malformed or negative.
func unsignedInt(is string) *int {
	v, err := strconv.Atoi(strings.TrimSpace(is))
	if err != nil || v < 0 {
		return nil
	}
	return &v
}

// cmpNumbered orders by number (unnumbered last), then UID.
func cmpNumbered(a, b *int, ua, ub string) int {
	switch {
	case a != nil && b != nil && *a != *b:
		return *a - *b
	case a != nil && b == nil:
		return -1
	case a == nil && b != nil:
		return 1
	}
	return strings.Compare(ua, ub)
}
