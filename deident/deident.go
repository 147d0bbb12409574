package deident

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/dcm"
)

// Options selects the options of PS3.15 E.3 applied on top of the Basic
// Application Level Confidentiality Profile (E.2). The Retain Safe
// Private, Clean Pixel Data, Clean Recognizable Visual Features, Clean
// Structured Content and Clean Graphics options are not implemented: what
// they would keep is removed or replaced as the Basic Profile says.
type Options struct {
	RetainUIDs                   bool // DCM 113110
	RetainDeviceIdentity         bool // DCM 113109
	RetainInstitutionIdentity    bool // DCM 113112
	RetainPatientCharacteristics bool // DCM 113108 (its C rows fall back to the Basic Profile)
	RetainLongFullDates          bool // DCM 113106
	// RetainLongModifiedDates moves every DA and DT value of the table's
	// date rows back by a per-patient offset of whole days (derived from
	// the site secret and the original Patient ID, so the same patient
	// keeps the same offset across files and runs); times are kept, which
	// a whole-day offset leaves consistent. DCM 113107.
	RetainLongModifiedDates bool
	// CleanDescriptors claims the Clean Descriptors Option (DCM 113105).
	// Free text cannot be cleaned reliably, so "clean" here removes: each
	// C row gets its Basic Profile action (X removes, D gets a dummy).
	CleanDescriptors bool
}

// A code of CID 7050 De-identification Method (PS3.16), coding scheme DCM.
type code struct{ value, meaning string }

var (
	codeBasic        = code{"113100", "Basic Application Confidentiality Profile"}
	codeCleanDesc    = code{"113105", "Clean Descriptors Option"}
	codeFullDates    = code{"113106", "Retain Longitudinal Temporal Information Full Dates Option"}
	codeModDates     = code{"113107", "Retain Longitudinal Temporal Information Modified Dates Option"}
	codePatientChars = code{"113108", "Retain Patient Characteristics Option"}
	codeDevice       = code{"113109", "Retain Device Identity Option"}
	codeUIDs         = code{"113110", "Retain UIDs Option"}
	codeInstitution  = code{"113112", "Retain Institution Identity Option"}
)

// column is one option column of Table E.1-1 that Options can enable.
type column struct {
	on   bool
	code code
	cell func(*Rule) Action
}

func (o Options) columns() []column {
	return []column{
		{o.RetainUIDs, codeUIDs, func(r *Rule) Action { return r.UIDs }},
		{o.RetainDeviceIdentity, codeDevice, func(r *Rule) Action { return r.Device }},
		{o.RetainInstitutionIdentity, codeInstitution, func(r *Rule) Action { return r.Institution }},
		{o.RetainPatientCharacteristics, codePatientChars, func(r *Rule) Action { return r.PatientChars }},
		{o.RetainLongFullDates, codeFullDates, func(r *Rule) Action { return r.FullDates }},
		{o.RetainLongModifiedDates, codeModDates, func(r *Rule) Action { return r.ModifiedDates }},
		{o.CleanDescriptors, codeCleanDesc, func(r *Rule) Action { return r.CleanDesc }},
	}
}

// resolve applies the enabled options to a row: an option's requirement
// overrides the Basic Profile's (PS3.15 E.1.1). No two supported columns
// of the table disagree on a row, except the two date options, which New
// refuses together.
func (o Options) resolve(r *Rule) step {
	for _, c := range o.columns() {
		a := c.cell(r)
		if !c.on || a == None {
			continue
		}
		if a == C {
			if c.code == codeModDates {
				return stepShift
			}
			// Clean Descriptors and the C rows of Retain Patient
			// Characteristics: no cleaner for free text, so the Basic
			// Profile's removal or dummy.
			return basicStep(r.Basic)
		}
		return basicStep(a)
	}
	return basicStep(r.Basic)
}

// Deidentifier applies the Basic Application Level Confidentiality
// Profile and Options to data sets. It is safe for concurrent use; it
// holds no state but its map.
type Deidentifier struct {
	opt    Options
	m      *Map
	steps  map[tag.Tag]step
	codes  []code
	dateTM string // LongitudinalTemporalInformationModified (0028,0303)
	// otherDates is the step for DA, DT and TM attributes not in the
	// table (Instance Creation Date, SR content dates, …), which PS3.15
	// E.1.1 Note 4 suggests handling by VR: they are dates of the patient's
	// care as much as the rows are, and HIPAA's Safe Harbor removes them.
	otherDates step
}

// versionTags are date-time attributes not in the table that date a
// coding resource, not the patient (PS3.3 Table 8.8-1, 10.x): kept.
func versionTag(t tag.Tag) bool {
	switch t {
	case tag.ContextGroupVersion, tag.ContextGroupLocalVersion, tag.TemplateVersion, tag.TemplateLocalVersion:
		return true
	}
	return false
}

// New returns a Deidentifier for opt that records every pseudonym it
// issues in m and derives them from m's site secret.
func New(opt Options, m *Map) (*Deidentifier, error) {
	if m == nil {
		return nil, ErrNoMap
	}
	if opt.RetainLongFullDates && opt.RetainLongModifiedDates {
		return nil, fmt.Errorf("%w: RetainLongFullDates and RetainLongModifiedDates exclude each other", ErrOptions)
	}
	d := &Deidentifier{opt: opt, m: m, steps: make(map[tag.Tag]step, len(profileTable)), codes: []code{codeBasic}}
	for i := range profileTable {
		r := &profileTable[i]
		s := opt.resolve(r)
		if s == stepZero && (r.Tag == tag.PatientName || r.Tag == tag.PatientID || r.Tag == tag.AccessionNumber) {
			// Z allows a dummy; a keyed pseudonym keeps one patient's
			// studies together and is what the map re-identifies.
			s = stepPseudonym
		}
		d.steps[r.Tag] = s
	}
	for _, c := range opt.columns() {
		if c.on {
			d.codes = append(d.codes, c.code)
		}
	}
	switch {
	case opt.RetainLongFullDates:
		d.dateTM, d.otherDates = "UNMODIFIED", stepKeep
	case opt.RetainLongModifiedDates:
		d.dateTM, d.otherDates = "MODIFIED", stepShift
	default:
		// As the table's X/D date rows: a dummy keeps any IOD valid.
		d.dateTM, d.otherDates = "REMOVED", stepDummy
	}
	return d, nil
}

// Record describes one de-identified instance by its new identifiers; it
// holds no PHI and may be logged.
type Record struct {
	SOPClassUID       string
	SOPInstanceUID    string // new
	StudyInstanceUID  string // new
	SeriesInstanceUID string // new
	Modality          string
	PatientPseudonym  string // the new Patient ID
}

// instance is the state of one Dataset call: the patient's keys and the
// pairs to record in the map.
type instance struct {
	patientToken string
	dateOffset   int // days back
	pairs        []Pair
}

// Dataset de-identifies ds in place: every attribute of Table E.1-1, at
// the top level and in every sequence item, gets its action; private
// attributes (odd groups), curves (50xx) and overlays (60xx) are removed;
// attributes not in the table are kept, and sequences among them cleaned.
// Patient Identity Removed, De-identification Method (Code Sequence) and
// Longitudinal Temporal Information Modified are set, and a File Meta
// Information group, if present, is replaced by one describing radgate
// (PS3.15 E.1.1 item 7) with the new SOP Instance UID.
//
// It refuses with ErrBurnedIn, before changing anything, what SafePixels
// refuses. The pseudonyms issued are durable in the map when it returns.
// On any other error ds is partly changed and must be discarded.
func (d *Deidentifier) Dataset(ds *dicom.Dataset) (Record, error) {
	modality, sopClass := topString(ds, tag.Modality), topString(ds, tag.SOPClassUID)
	if err := SafePixels(modality, sopClass, topString(ds, tag.BurnedInAnnotation)); err != nil {
		return Record{}, err
	}
	secret, err := d.m.secretKey()
	if err != nil {
		return Record{}, err
	}
	patientKey := topString(ds, tag.PatientID)
	if patientKey == "" {
		patientKey = topString(ds, tag.PatientName)
	}
	in := &instance{
		patientToken: token(secret, "patient", patientKey),
		dateOffset:   1 + int(binary.BigEndian.Uint64(keyed(secret, "date-offset", patientKey))%MaxDateShiftDays),
	}
	d.recordTop(ds, secret, in)
	ts := topString(ds, tag.TransferSyntaxUID)
	hadMeta := slices.ContainsFunc(ds.Elements, func(e *dicom.Element) bool { return e.Tag.Group == tag.MetadataGroup })

	els, err := d.clean(ds.Elements, secret, in, 0)
	if err != nil {
		return Record{}, err
	}
	els = slices.DeleteFunc(els, func(e *dicom.Element) bool {
		switch e.Tag {
		case tag.PatientIdentityRemoved, tag.DeidentificationMethod, tag.DeidentificationMethodCodeSequence,
			tag.LongitudinalTemporalInformationModified:
			return true
		}
		return e.Tag.Group == tag.MetadataGroup
	})
	added, err := d.marks()
	if err != nil {
		return Record{}, err
	}
	els = append(els, added...)
	ds.Elements = els
	rec := Record{
		SOPClassUID:       sopClass,
		SOPInstanceUID:    topString(ds, tag.SOPInstanceUID),
		StudyInstanceUID:  topString(ds, tag.StudyInstanceUID),
		SeriesInstanceUID: topString(ds, tag.SeriesInstanceUID),
		Modality:          modality,
		PatientPseudonym:  topString(ds, tag.PatientID),
	}
	if hadMeta {
		meta, err := fileMeta(rec.SOPClassUID, rec.SOPInstanceUID, ts)
		if err != nil {
			return Record{}, err
		}
		ds.Elements = append(ds.Elements, meta...)
	}
	slices.SortStableFunc(ds.Elements, func(a, b *dicom.Element) int { return cmp.Compare(a.Tag.Uint32(), b.Tag.Uint32()) })
	if err := d.m.record(in.pairs); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// recordTop collects the map pairs of the instance's identifiers before
// they are replaced.
func (d *Deidentifier) recordTop(ds *dicom.Dataset, secret []byte, in *instance) {
	add := func(k Kind, orig, pseudo string) {
		if orig != "" && orig != pseudo {
			in.pairs = append(in.pairs, Pair{Kind: k, Original: orig, Pseudonym: pseudo})
		}
	}
	if id := topString(ds, tag.PatientID); d.steps[tag.PatientID] == stepPseudonym {
		add(KindPatientID, id, in.patientToken)
	}
	if name := topString(ds, tag.PatientName); d.steps[tag.PatientName] == stepPseudonym {
		add(KindPatientName, name, "ANON^"+in.patientToken)
	}
	if acc := topString(ds, tag.AccessionNumber); d.steps[tag.AccessionNumber] == stepPseudonym {
		add(KindAccession, acc, token(secret, "accession", acc))
	}
	for _, u := range []struct {
		k Kind
		t tag.Tag
	}{{KindStudyUID, tag.StudyInstanceUID}, {KindSeriesUID, tag.SeriesInstanceUID}, {KindSOPInstanceUID, tag.SOPInstanceUID}} {
		if d.steps[u.t] == stepUID {
			v := topString(ds, u.t)
			add(u.k, v, newUID(secret, v))
		}
	}
}

// clean returns els de-identified; depth counts the enclosing sequences.
func (d *Deidentifier) clean(els []*dicom.Element, secret []byte, in *instance, depth int) ([]*dicom.Element, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	out := els[:0]
	for _, e := range els {
		g := e.Tag.Group
		if g%2 == 1 || (g >= 0x5000 && g <= 0x50FF) || (g >= 0x6000 && g <= 0x60FF) {
			// Private attributes (Retain Safe Private is not implemented),
			// curves and overlays with their comments (Table E.1-1 rows
			// "Private attributes", "Curve Data", "Overlay Data/Comments";
			// a whole group goes, as its other attributes are useless
			// without the data).
			continue
		}
		s, inTable := d.steps[e.Tag]
		switch vr := e.RawValueRepresentation; {
		case inTable:
		case (vr == "DA" || vr == "DT" || vr == "TM") && !versionTag(e.Tag):
			s = d.otherDates
		default:
			s = stepKeep
		}
		keep, err := d.apply(e, s, secret, in, depth)
		if err != nil {
			return nil, err
		}
		if keep {
			out = append(out, e)
		}
	}
	return out, nil
}

// apply performs step s on e and reports whether e stays in the data set.
func (d *Deidentifier) apply(e *dicom.Element, s step, secret []byte, in *instance, depth int) (bool, error) {
	vt := e.Value.ValueType()
	switch s {
	case stepRemove:
		return false, nil
	case stepKeep:
		if vt != dicom.Sequences {
			return true, nil
		}
		items := e.Value.GetValue().([]*dicom.SequenceItemValue)
		cleaned := make([][]*dicom.Element, 0, len(items))
		for _, it := range items {
			c, err := d.clean(it.GetValue().([]*dicom.Element), secret, in, depth+1)
			if err != nil {
				return false, err
			}
			cleaned = append(cleaned, c)
		}
		return true, setValue(e, cleaned)
	case stepZero:
		return true, setValue(e, zeroOf(vt))
	case stepDummy:
		return true, setValue(e, dummyOf(vt, e.RawValueRepresentation))
	}
	if vt != dicom.Strings {
		// U, C and pseudonyms are defined on string values; anything else
		// in such a row is malformed and must not pass unchanged.
		return false, nil
	}
	vals := slices.Clone(e.Value.GetValue().([]string))
	for i, v := range vals {
		v = strings.TrimRight(v, " \x00")
		switch {
		case v == "":
		case s == stepUID:
			vals[i] = newUID(secret, v)
		case s == stepShift:
			vals[i] = shiftDate(v, e.RawValueRepresentation, in.dateOffset)
		case e.Tag == tag.PatientName:
			vals[i] = "ANON^" + in.patientToken
		case e.Tag == tag.AccessionNumber:
			vals[i] = token(secret, "accession", v)
		default: // Patient ID, here or in an item
			vals[i] = token(secret, "patient", v)
		}
	}
	return true, setValue(e, vals)
}

// setValue replaces e's value. The writer always encodes sequences with
// undefined length and delimiters (suyashkumar/dicom write.go), so a
// sequence is marked undefined length to keep its header consistent.
func setValue(e *dicom.Element, data any) error {
	v, err := dicom.NewValue(data)
	if err != nil {
		return fmt.Errorf("deident: %s: %w", tag.DebugString(e.Tag), err)
	}
	e.Value = v
	e.ValueLength = 0
	if v.ValueType() == dicom.Sequences {
		e.ValueLength = tag.VLUndefinedLength
	}
	return nil
}

func zeroOf(vt dicom.ValueType) any {
	switch vt {
	case dicom.Ints:
		return []int{}
	case dicom.Floats:
		return []float64{}
	case dicom.Bytes:
		return []byte{}
	case dicom.Sequences:
		return [][]*dicom.Element{}
	default:
		return []string{""}
	}
}

// dummyOf is a fixed non-empty value valid for the VR (PS3.5 6.2); for a
// sequence, one empty item: a copy of the items would keep what the
// table does not list (free text, dates of other rows).
func dummyOf(vt dicom.ValueType, vr string) any {
	switch vt {
	case dicom.Ints:
		return []int{0}
	case dicom.Floats:
		return []float64{0}
	case dicom.Bytes:
		return []byte{0, 0}
	case dicom.Sequences:
		return [][]*dicom.Element{{}}
	}
	switch vr {
	case "DA":
		return []string{"19000101"}
	case "DT":
		return []string{"19000101000000"}
	case "TM":
		return []string{"000000"}
	case "DS", "IS":
		return []string{"0"}
	case "AS":
		return []string{"000Y"}
	case "AE", "CS":
		return []string{"ANONYMIZED"}
	case "UI":
		return []string{"2.25.0"}
	default:
		return []string{"ANONYMIZED"}
	}
}

// shiftDate moves a DA or DT value back by days; a value too short or not
// a date is emptied rather than kept. Other VRs (TM, the SH of Timezone
// Offset From UTC) are unchanged by a whole-day offset.
func shiftDate(v, vr string, days int) string {
	if vr != "DA" && vr != "DT" {
		return v
	}
	if len(v) < 8 {
		return ""
	}
	t, err := time.Parse("20060102", v[:8])
	if err != nil {
		return ""
	}
	return t.AddDate(0, 0, -days).Format("20060102") + v[8:]
}

// marks are the attributes that say how the data set was de-identified
// (PS3.15 E.1.1 item 6, PS3.3 C.7.1.1 and C.7.6.1).
func (d *Deidentifier) marks() ([]*dicom.Element, error) {
	items := make([][]*dicom.Element, 0, len(d.codes))
	meanings := make([]string, 0, len(d.codes))
	for _, c := range d.codes {
		var it []*dicom.Element
		for _, kv := range []struct {
			t tag.Tag
			v string
		}{{tag.CodeValue, c.value}, {tag.CodingSchemeDesignator, "DCM"}, {tag.CodeMeaning, c.meaning}} {
			e, err := dicom.NewElement(kv.t, []string{kv.v})
			if err != nil {
				return nil, err
			}
			it = append(it, e)
		}
		items = append(items, it)
		meanings = append(meanings, c.meaning)
	}
	var out []*dicom.Element
	for _, kv := range []struct {
		t tag.Tag
		v any
	}{
		{tag.PatientIdentityRemoved, []string{"YES"}},
		{tag.DeidentificationMethod, meanings},
		{tag.DeidentificationMethodCodeSequence, items},
		{tag.LongitudinalTemporalInformationModified, []string{d.dateTM}},
	} {
		e, err := dicom.NewElement(kv.t, kv.v)
		if err != nil {
			return nil, err
		}
		if e.Value.ValueType() == dicom.Sequences {
			e.ValueLength = tag.VLUndefinedLength
		}
		out = append(out, e)
	}
	return out, nil
}

// fileMeta is a new File Meta Information group (PS3.10 7.1) naming
// radgate as the implementation.
func fileMeta(sopClass, sopInstance, ts string) ([]*dicom.Element, error) {
	var out []*dicom.Element
	for _, kv := range []struct {
		t tag.Tag
		v any
	}{
		{tag.FileMetaInformationVersion, []byte{0, 1}},
		{tag.MediaStorageSOPClassUID, []string{sopClass}},
		{tag.MediaStorageSOPInstanceUID, []string{sopInstance}},
		{tag.TransferSyntaxUID, []string{ts}},
		{tag.ImplementationClassUID, []string{dcm.ImplementationClassUID}},
		{tag.ImplementationVersionName, []string{dcm.ImplementationVersionName}},
	} {
		e, err := dicom.NewElement(kv.t, kv.v)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// File reads one Part 10 file of size bytes from r (any layout
// dcm.OpenPart10 accepts), de-identifies it with Dataset and writes it to
// w as a Part 10 file in its transfer syntax, with a new File Meta
// Information and a zero preamble. Nothing is written to w on error
// before the data set is de-identified; a write error may leave w
// partly written.
func (d *Deidentifier) File(r io.Reader, size int64, w io.Writer) (Record, error) {
	if size < 0 || size > MaxFileBytes {
		return Record{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, size, int64(MaxFileBytes))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Record{}, fmt.Errorf("%w: read: %w", ErrMalformed, err)
	}
	ds, err := parse(buf)
	if err != nil {
		return Record{}, err
	}
	rec, err := d.Dataset(&ds)
	if err != nil {
		return Record{}, err
	}
	if err := write(w, ds); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// parse validates buf with dcm's bounded scanner first — suyashkumar/dicom
// trusts declared lengths and may panic on hostile input — and then
// parses it, behind a fresh file meta so that every layout OpenPart10
// accepts reaches the library as preamble + DICM + group 0002.
func parse(buf []byte) (ds dicom.Dataset, err error) {
	meta, rest, err := dcm.OpenPart10(bytes.NewReader(buf))
	if err != nil {
		return ds, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	tsInfo, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return ds, fmt.Errorf("%w: transfer syntax %s", ErrUnsupported, meta.TransferSyntaxUID)
	}
	if tsInfo.Deflated {
		return ds, fmt.Errorf("%w: %s", ErrUnsupported, tsInfo.Name)
	}
	body, err := io.ReadAll(rest)
	if err != nil {
		return ds, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dcm.ScanDataset(bytes.NewReader(body), tsInfo, nil); err != nil {
		return ds, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var canon bytes.Buffer
	canon.Grow(len(body) + 512)
	if err := dcm.WriteFileMeta(&canon, dcm.FileMeta{
		MediaStorageSOPClassUID:    orUnknown(meta.MediaStorageSOPClassUID),
		MediaStorageSOPInstanceUID: orUnknown(meta.MediaStorageSOPInstanceUID),
		TransferSyntaxUID:          meta.TransferSyntaxUID,
	}); err != nil {
		return ds, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	canon.Write(body)
	defer func() {
		if p := recover(); p != nil {
			// The library's message may quote values; it is not kept.
			ds, err = dicom.Dataset{}, fmt.Errorf("%w: DICOM parser panicked", ErrMalformed)
		}
	}()
	ds, err = dicom.Parse(bytes.NewReader(canon.Bytes()), int64(canon.Len()), nil,
		dicom.SkipProcessingPixelDataValue(), dicom.AllowUnknownSpecificCharacterSet())
	if err != nil {
		// The library's message may quote values; it is not kept.
		return dicom.Dataset{}, fmt.Errorf("%w: DICOM parser rejected the data set", ErrMalformed)
	}
	return ds, nil
}

// orUnknown stands in for a file meta UID the input lacks: WriteFileMeta
// requires one, and Dataset replaces the group anyway.
func orUnknown(uid string) string {
	if uid == "" {
		return "2.25.0"
	}
	return uid
}

func write(w io.Writer, ds dicom.Dataset) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("deident: DICOM writer panicked")
		}
	}()
	if err := dicom.Write(w, ds, dicom.SkipVRVerification()); err != nil {
		return fmt.Errorf("deident: write: %w", err)
	}
	return nil
}

// topString is the first value of a top-level string attribute, without
// padding; "" when absent or not a string.
func topString(ds *dicom.Dataset, t tag.Tag) string {
	for _, e := range ds.Elements {
		if e.Tag != t {
			continue
		}
		if e.Value.ValueType() != dicom.Strings {
			return ""
		}
		if v := e.Value.GetValue().([]string); len(v) > 0 {
			return strings.TrimRight(v[0], " \x00")
		}
		return ""
	}
	return ""
}

// keyed is HMAC-SHA-256(secret, domain || 0 || value): one key, separate
// uses that never collide.
func keyed(secret []byte, domain, value string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return h.Sum(nil)
}

// token is a 16-character pseudonym (80 bits) — within the 16 characters
// of SH (Accession Number) and the 64 of LO (Patient ID).
func token(secret []byte, domain, value string) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(keyed(secret, domain, value)[:10])
}

// newUID is "2.25." and the first 128 bits of HMAC-SHA-256(secret, uid)
// in decimal (PS3.5 B.2 form): the same original always maps to the same
// UID at one site, so series, studies and references stay consistent
// across files and runs, and nobody without the secret can test a guess.
func newUID(secret []byte, uid string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(uid))
	return "2.25." + new(big.Int).SetBytes(h.Sum(nil)[:16]).String()
}
