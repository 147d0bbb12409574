package sr

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/dsbuild"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Errors of WriteSR and WriteKOS, wrapped with the detail. No message
// quotes a value of the source instance (patient data) or a UID as is.
var (
	// ErrReport: the Report itself cannot make a valid document.
	ErrReport = errors.New("sr: invalid report")
	// ErrSource: the source instance cannot be parsed or lacks the Study
	// Instance UID.
	ErrSource = errors.New("sr: unusable source instance")
	// ErrNoKeyImages: WriteKOS found no image among the positive findings.
	ErrNoKeyImages = errors.New("sr: no key images: no positive finding has images")
)

// The storage SOP classes written (PS3.4 B.5, PS3.6 Table A-1).
const (
	uidComprehensiveSR = "1.2.840.10008.5.1.4.1.1.88.33"
	uidKeyObject       = "1.2.840.10008.5.1.4.1.1.88.59"
)

// Series numbers of the documents' series: after those of the modality.
const (
	srSeriesNumber  = 990
	kosSeriesNumber = 991
)

// Value limits of PS3.5 Table 6.2-1 that Report fields must fit.
const (
	maxLO = 64 // Long String: manufacturer, software version, code meaning
	maxSH = 16 // Short String: code value, coding scheme designator
)

// Code is a coded concept (PS3.3 8.8, Table 8.8-1a): coding scheme
// designator ("DCM", "SCT", …), code value and code meaning.
type Code struct{ Scheme, Value, Meaning string }

// Algorithm is the model whose results a document reports (TID 4019
// Algorithm Identification, TID 1004 Device Observer).
type Algorithm struct {
	Name, Version, Manufacturer string
	SHA256                      string // the model file's SHA-256, lower-case hex
	// TrainedOnPhantoms says the model learnt from synthetic phantoms only
	// (package phantom); the documents' disclaimer then says so.
	TrainedOnPhantoms bool
}

// Equipment is radgate itself, which writes the documents (General
// Equipment Module, PS3.3 C.7.5.1).
type Equipment struct{ Manufacturer, SoftwareVersion string }

// ImageRef names one image of the source study.
type ImageRef struct {
	SOPClassUID, SOPInstanceUID, SeriesInstanceUID string
	Frame                                          int // 1, 2, …: one frame of a multi-frame image; 0: the whole instance
}

// Finding is one output of the model.
type Finding struct {
	Label                  string // the model's label, e.g. "hemorrhage" (the Tracking Identifier)
	Concept                Code   // what was looked for, e.g. (SCT 1386000 "Intracranial hemorrhage")
	Probability, Threshold float64
	Positive               bool // Probability ≥ Threshold: the finding is present
	// Images support the finding: for a CT series the key slices (at or
	// above the threshold), for a radiograph the image itself.
	Images []ImageRef
}

// Report is what WriteSR and WriteKOS write about one study.
type Report struct {
	// Source is one instance of the study, a Part 10 file; the documents
	// copy its patient and study attributes. It is read up to those (not
	// its pixel data) by each Write call: give each call its own reader.
	Source    io.Reader
	Algorithm Algorithm
	Equipment Equipment
	Procedure Code // Procedure reported (see ProcedureFor)
	Findings  []Finding
	// Evidence is every image the model read; the images of the findings
	// are added when missing.
	Evidence []ImageRef
	// Revision numbers the evaluations of a study by one model version:
	// 1, then 2, … when late instances make a re-evaluation.
	Revision int
	Time     time.Time // content and instance creation date and time, in its location
}

// Document is a written SR or KOS instance.
type Document struct {
	SOPClassUID, SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID string
	Data                                                             []byte // a Part 10 file, explicit VR little endian
}

// Procedure codes of ProcedureFor (SNOMED CT).
var (
	codeCTHead           = Code{"SCT", "303653007", "Computed tomography of head"}
	codeChestXRay        = Code{"SCT", "399208008", "Plain chest X-ray"}
	codeImagingProcedure = Code{"SCT", "363679005", "Imaging procedure"} // CID 100
)

// ProcedureFor is the Procedure reported (TID 1500 row 4) for the
// Modality and Body Part Examined of the source (PS3.3 C.7.3.1, PS3.16
// Annex L): a head CT, a chest radiograph, else a generic imaging
// procedure.
func ProcedureFor(modality, bodyPart string) Code {
	m := strings.ToUpper(strings.TrimSpace(modality))
	p := strings.ToUpper(strings.TrimSpace(bodyPart))
	switch {
	case m == "CT" && (p == "HEAD" || p == "BRAIN"):
		return codeCTHead
	case (m == "DX" || m == "CR") && p == "CHEST":
		return codeChestXRay
	}
	return codeImagingProcedure
}

// WriteSR writes the Comprehensive SR (PS3.3 A.35.3) of r, an Imaging
// Measurement Report (PS3.16 TID 1500) in the source's study and its own
// series, one per (study, algorithm name, version). Its UIDs derive from
// the study UID, the algorithm and the revision (dcm.HashUID), so writing
// the same Report again gives the same instance.
func WriteSR(r Report) (Document, error) {
	d, err := prepare(r)
	if err != nil {
		return Document{}, err
	}
	seriesUID, sopUID := d.uid("sr-series"), d.instanceUID("sr", r.Revision)
	b := d.header(uidComprehensiveSR, sopUID, "SR", seriesUID, srSeriesNumber)
	// SR Document General Module (PS3.3 C.17.2): an unverified machine
	// result, complete for the instances it read, preliminary until a
	// radiologist has reviewed it.
	b.Str(tag.PreliminaryFlag, "PRELIMINARY")
	b.Str(tag.CompletionFlag, "COMPLETE")
	b.Str(tag.VerificationFlag, "UNVERIFIED")
	b.Seq(tag.PerformedProcedureCodeSequence, r.Procedure.item())
	b.Seq(tag.CurrentRequestedProcedureEvidenceSequence, studyRefs(d.src.studyUID, d.evidence))
	if r.Revision > 1 {
		// a re-evaluation holds the findings of the revision before it,
		// revised: that one is its predecessor (PS3.3 C.17.2)
		prev := ImageRef{SOPClassUID: uidComprehensiveSR, SOPInstanceUID: d.instanceUID("sr", r.Revision-1)}
		b.Seq(tag.PredecessorDocumentsSequence, studyRefs(d.src.studyUID, []series{{uid: seriesUID, refs: []ImageRef{prev}}}))
	}
	root(b, codeImagingMeasurementReport, tidMeasurement, d.measurementReport())
	return d.document(b, uidComprehensiveSR, sopUID, seriesUID)
}

// WriteKOS writes a Key Object Selection Document (PS3.3 A.35.4, PS3.16
// TID 2010 "Of Interest") selecting the images of r's positive findings,
// in its own series next to the SR's. It returns ErrNoKeyImages when no
// positive finding has images.
func WriteKOS(r Report) (Document, error) {
	d, err := prepare(r)
	if err != nil {
		return Document{}, err
	}
	var keys []ImageRef
	var labels []string
	seen := map[ImageRef]bool{} // an image two findings share is selected once
	for _, f := range r.Findings {
		if !f.Positive || len(f.Images) == 0 {
			continue
		}
		labels = append(labels, f.Label+" (probability "+decimal(f.Probability)+")")
		for _, img := range f.Images {
			if !seen[img] {
				seen[img] = true
				keys = append(keys, img)
			}
		}
	}
	if len(keys) == 0 {
		return Document{}, ErrNoKeyImages
	}
	seriesUID, sopUID := d.uid("kos-series"), d.instanceUID("kos", r.Revision)
	b := d.header(uidKeyObject, sopUID, "KO", seriesUID, kosSeriesNumber)
	// Key Object Document Module (PS3.3 C.17.6.2): the evidence is the
	// selected instances.
	b.Seq(tag.CurrentRequestedProcedureEvidenceSequence, studyRefs(d.src.studyUID, bySeries(keys)))
	items := append(d.context(), textItem(relContains, codeKeyObjectDescription,
		"Key images of the findings "+strings.Join(labels, ", ")+". "+d.disclaimer()))
	for _, k := range keys {
		items = append(items, imageItem(relContains, nil, k))
	}
	root(b, codeOfInterest, tidKeyObject, items)
	return d.document(b, uidKeyObject, sopUID, seriesUID)
}

// doc is a document being written.
type doc struct {
	r        Report
	src      source
	evidence []series // Report.Evidence and the findings' images
}

func prepare(r Report) (*doc, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	src, err := readSource(r.Source)
	if err != nil {
		return nil, err
	}
	refs := slices.Clone(r.Evidence)
	for _, f := range r.Findings {
		refs = append(refs, f.Images...)
	}
	return &doc{r: r, src: src, evidence: bySeries(refs)}, nil
}

// uid is the UID of a thing shared by the revisions of one model version's
// documents on the study (a series).
func (d *doc) uid(what string) string {
	return dcm.HashUID(d.src.studyUID, d.r.Algorithm.Name, d.r.Algorithm.Version, what)
}

// instanceUID is a document's SOP Instance UID: one per revision.
func (d *doc) instanceUID(what string, revision int) string {
	return dcm.HashUID(d.src.studyUID, d.r.Algorithm.Name, d.r.Algorithm.Version, strconv.Itoa(revision), what)
}

// header starts a document's data set: File Meta Information, SOP Common
// (PS3.3 C.12.1), the copied patient and study modules, the document's
// series (SR Document Series C.17.1, Key Object Document Series
// C.17.6.1), General Equipment (C.7.5.1) and what SR Document General
// (C.17.2) and Key Object Document (C.17.6.2) share.
func (d *doc) header(sopClass, sopUID, modality, seriesUID string, seriesNumber int) *dsbuild.Builder {
	date, tm := d.r.Time.Format("20060102"), d.r.Time.Format("150405")
	b := &dsbuild.Builder{}
	b.FileMeta(sopClass, sopUID, dcm.ImplementationClassUID, dcm.ImplementationVersionName)
	b.Str(tag.SOPClassUID, sopClass)
	b.Str(tag.SOPInstanceUID, sopUID)
	b.Str(tag.InstanceCreationDate, date)
	b.Str(tag.InstanceCreationTime, tm)

	have := map[tag.Tag]bool{}
	for _, e := range d.src.els {
		b.Element(e)
		have[e.Tag] = true
	}
	for _, t := range type2 {
		if !have[t] {
			b.Str(t)
		}
	}

	b.Str(tag.Modality, modality)
	b.Str(tag.SeriesInstanceUID, seriesUID)
	b.Str(tag.SeriesNumber, strconv.Itoa(seriesNumber))
	// the same for every revision: they share the series
	desc := "PRELIMINARY AI RESULT " + d.r.Algorithm.Name + " " + d.r.Algorithm.Version
	b.Str(tag.SeriesDescription, desc[:min(len(desc), maxLO)])
	b.Seq(tag.ReferencedPerformedProcedureStepSequence)

	b.Str(tag.Manufacturer, d.r.Equipment.Manufacturer)
	if d.r.Equipment.SoftwareVersion != "" {
		b.Str(tag.SoftwareVersions, d.r.Equipment.SoftwareVersion)
	}

	b.Str(tag.InstanceNumber, strconv.Itoa(d.r.Revision))
	b.Str(tag.ContentDate, date)
	b.Str(tag.ContentTime, tm)
	return b
}

// document encodes b, the data set of the instance sopUID of sopClass in
// the series seriesUID.
func (d *doc) document(b *dsbuild.Builder, sopClass, sopUID, seriesUID string) (Document, error) {
	data, err := dsbuild.Encode(b, 16<<10+300*len(d.evidence))
	if err != nil {
		return Document{}, fmt.Errorf("sr: encode: %w", err)
	}
	return Document{SOPClassUID: sopClass, SOPInstanceUID: sopUID, SeriesInstanceUID: seriesUID, StudyInstanceUID: d.src.studyUID, Data: data}, nil
}

// context is the head of both documents' content: the language (TID
// 1204) and the observer, the model as a device (TID 1002, TID 1004).
func (d *doc) context() []*dsbuild.Builder {
	a := d.r.Algorithm
	items := []*dsbuild.Builder{
		codeItem(relConceptMod, codeLanguage, codeEnglishUS),
		codeItem(relObsContext, codeObserverType, codeDevice),
		uidItem(relObsContext, codeDeviceObserverUID, dcm.HashUID("radgate device observer", a.Name, a.Version, a.SHA256)),
		textItem(relObsContext, codeDeviceObserverName, a.Name),
	}
	if a.Manufacturer != "" {
		items = append(items, textItem(relObsContext, codeDeviceManufacturer, a.Manufacturer))
	}
	return append(items,
		textItem(relObsContext, codeDeviceModelName, a.Name),
		textItem(relObsContext, codeDeviceSerialNumber, a.Version))
}

// measurementReport is the content of TID 1500 after its title: context,
// Procedure reported, the Image Library (TID 1600) of the evidence by
// series, one Measurement Group (TID 1501) per finding, and the
// disclaimer (TID 1500 is extensible).
func (d *doc) measurementReport() []*dsbuild.Builder {
	items := append(d.context(), codeItem(relConceptMod, codeProcedureReported, d.r.Procedure))
	groups := make([]*dsbuild.Builder, len(d.evidence))
	for i, s := range d.evidence {
		entries := make([]*dsbuild.Builder, len(s.refs))
		for j, ref := range s.refs {
			entries[j] = imageItem(relContains, nil, ref) // TID 1601 row 1
		}
		groups[i] = containerItem(relContains, codeImageLibraryGroup, entries)
	}
	items = append(items, containerItem(relContains, codeImageLibrary, groups))
	measurements := make([]*dsbuild.Builder, len(d.r.Findings))
	for i, f := range d.r.Findings {
		measurements[i] = d.measurementGroup(f)
	}
	return append(items,
		containerItem(relContains, codeImagingMeasurements, measurements),
		textItem(relContains, codeComment, d.disclaimer()))
}

// measurementGroup is TID 1501 for one finding: tracking identifier and
// UID (TID 4108; the UID follows the finding across revisions and
// versions), the finding, the algorithm and its parameters (TID 4019), the
// probability, whether the finding is present, and its images.
func (d *doc) measurementGroup(f Finding) *dsbuild.Builder {
	a := d.r.Algorithm
	presence := codeAbsent
	if f.Positive {
		presence = codePresent
	}
	items := []*dsbuild.Builder{
		textItem(relObsContext, codeTrackingID, f.Label),
		uidItem(relObsContext, codeTrackingUID, dcm.HashUID(d.src.studyUID, a.Name, "tracking", f.Label)),
		codeItem(relContains, codeFinding, f.Concept),
		textItem(relConceptMod, codeAlgorithmName, a.Name),
		textItem(relConceptMod, codeAlgorithmVersion, a.Version),
		textItem(relConceptMod, codeAlgorithmParameters, "model sha256: "+a.SHA256),
		textItem(relConceptMod, codeAlgorithmParameters, "decision threshold: "+decimal(f.Threshold)),
		numItem(relContains, codeCertainty, f.Probability, codeNoUnits),
		codeItem(relContains, f.Concept, presence),
	}
	for _, img := range f.Images {
		items = append(items, imageItem(relContains, &codeSource, img))
	}
	return containerItem(relContains, codeMeasurementGroup, items)
}

// disclaimer says what the documents are and are not.
func (d *doc) disclaimer() string {
	a := d.r.Algorithm
	s := "PRELIMINARY RESULT, NOT FOR CLINICAL USE WITHOUT REVIEW. Generated automatically by the AI model " +
		a.Name + " version " + a.Version + " (sha256 " + a.SHA256 + ")"
	if a.TrainedOnPhantoms {
		s += ", a model trained on synthetic phantoms only"
	}
	return s + ". Unverified: a radiologist must review it before any clinical decision."
}

// decimal formats a probability or threshold: at most 10 significant
// digits, which fits a Decimal String (PS3.5 6.2, 16 bytes).
func decimal(v float64) string { return strconv.FormatFloat(v, 'g', 10, 64) }

// check reports what keeps r from making a valid document. Messages name
// fields, not patient data.
func (r *Report) check() error {
	a := r.Algorithm
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"algorithm name", a.Name, maxLO},
		{"algorithm version", a.Version, maxLO},
		{"algorithm manufacturer", a.Manufacturer, maxLO},
		{"equipment manufacturer", r.Equipment.Manufacturer, maxLO},
		{"equipment software version", r.Equipment.SoftwareVersion, maxLO},
	} {
		if !printable(f.v) || len(f.v) > f.max {
			return fmt.Errorf("%w: %s: want at most %d printable ASCII characters, no backslash", ErrReport, f.name, f.max)
		}
	}
	switch {
	case a.Name == "" || a.Version == "":
		return fmt.Errorf("%w: algorithm name and version are required", ErrReport)
	case strings.Contains(a.Name+a.Version, "/"):
		return fmt.Errorf("%w: algorithm name or version contains \"/\" (it separates the parts of derived UIDs)", ErrReport)
	case !isSHA256(a.SHA256):
		return fmt.Errorf("%w: algorithm sha256: want 64 lower-case hex digits", ErrReport)
	case r.Revision < 1:
		return fmt.Errorf("%w: revision %d (want 1 or more)", ErrReport, r.Revision)
	case r.Time.IsZero():
		return fmt.Errorf("%w: no time", ErrReport)
	case len(r.Findings) == 0:
		return fmt.Errorf("%w: no findings", ErrReport)
	}
	if err := r.Procedure.check("procedure"); err != nil {
		return err
	}
	labels := map[string]bool{}
	images := len(r.Evidence)
	for i, f := range r.Findings {
		what := "finding " + strconv.Itoa(i+1)
		switch {
		case f.Label == "" || !printable(f.Label):
			return fmt.Errorf("%w: %s: label: want printable ASCII, no backslash", ErrReport, what)
		case labels[f.Label]:
			return fmt.Errorf("%w: %s: label %q given twice", ErrReport, what, f.Label)
		case !unit(f.Probability) || !unit(f.Threshold):
			return fmt.Errorf("%w: %s: probability and threshold must be within 0 and 1", ErrReport, what)
		case f.Positive != (f.Probability >= f.Threshold):
			return fmt.Errorf("%w: %s: positive is %v at probability %s, threshold %s", ErrReport, what,
				f.Positive, decimal(f.Probability), decimal(f.Threshold))
		}
		labels[f.Label] = true
		if err := f.Concept.check(what + " concept"); err != nil {
			return err
		}
		if err := checkRefs(what+" image", f.Images); err != nil {
			return err
		}
		images += len(f.Images)
	}
	if images == 0 {
		return fmt.Errorf("%w: no evidence images", ErrReport)
	}
	return checkRefs("evidence image", r.Evidence)
}

func (c Code) check(what string) error {
	if c.Value == "" || c.Scheme == "" || c.Meaning == "" || len(c.Value) > maxSH || len(c.Scheme) > maxSH ||
		len(c.Meaning) > maxLO || !printable(c.Value+c.Scheme+c.Meaning) {
		return fmt.Errorf("%w: %s: want scheme and value of 1-%d and a meaning of 1-%d printable ASCII characters",
			ErrReport, what, maxSH, maxLO)
	}
	return nil
}

func checkRefs(what string, refs []ImageRef) error {
	for i, r := range refs {
		if !dcm.ValidUID(r.SOPClassUID) || !dcm.ValidUID(r.SOPInstanceUID) || !dcm.ValidUID(r.SeriesInstanceUID) || r.Frame < 0 {
			return fmt.Errorf("%w: %s %d: want valid SOP class, SOP instance and series UIDs and a frame ≥ 0", ErrReport, what, i+1)
		}
	}
	return nil
}

// printable: the default character repertoire (PS3.5 6.1.2.1) without
// control characters and without the value separator "\".
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\' {
			return false
		}
	}
	return true
}

func unit(v float64) bool { return !math.IsNaN(v) && v >= 0 && v <= 1 }

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
