package sr

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/dicomio"
	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
)

// copied are the attributes WriteSR and WriteKOS take from the source
// instance as they are, so that the documents file into the source's
// patient and study and dcentvfy finds them agree: Specific Character Set
// (PS3.3 C.12.1, how their text is encoded) and the Patient (C.7.1.1),
// Clinical Trial Subject (C.7.1.3), General Study (C.7.2.1), Patient Study
// (C.7.2.2) and Clinical Trial Study (C.7.2.3) modules, all of which the
// SR and KOS IODs include (PS3.3 A.35.3, A.35.4).
var copied = map[tag.Tag]bool{
	tag.SpecificCharacterSet: true,
	// Patient
	tag.PatientName: true, tag.PatientID: true, tag.IssuerOfPatientID: true,
	tag.IssuerOfPatientIDQualifiersSequence: true, tag.TypeOfPatientID: true,
	tag.PatientBirthDate: true, tag.PatientBirthTime: true,
	tag.PatientBirthDateInAlternativeCalendar: true, tag.PatientDeathDateInAlternativeCalendar: true,
	tag.PatientAlternativeCalendar: true, tag.PatientSex: true,
	tag.ReferencedPatientPhotoSequence: true, tag.QualityControlSubject: true,
	tag.ReferencedPatientSequence: true, tag.OtherPatientIDs: true, tag.OtherPatientIDsSequence: true,
	tag.OtherPatientNames: true, tag.EthnicGroup: true, tag.PatientComments: true,
	tag.PatientSpeciesDescription: true, tag.PatientSpeciesCodeSequence: true,
	tag.PatientBreedDescription: true, tag.PatientBreedCodeSequence: true,
	tag.BreedRegistrationSequence: true, tag.StrainDescription: true, tag.StrainNomenclature: true,
	tag.StrainCodeSequence: true, tag.StrainAdditionalInformation: true, tag.StrainStockSequence: true,
	tag.GeneticModificationsSequence: true, tag.ResponsiblePerson: true,
	tag.ResponsiblePersonRole: true, tag.ResponsibleOrganization: true,
	tag.PatientIdentityRemoved: true, tag.DeidentificationMethod: true,
	tag.DeidentificationMethodCodeSequence: true, tag.SourcePatientGroupIdentificationSequence: true,
	tag.GroupOfPatientsIdentificationSequence: true,
	// Clinical Trial Subject
	tag.ClinicalTrialSponsorName: true, tag.ClinicalTrialProtocolID: true,
	tag.ClinicalTrialProtocolName: true, tag.ClinicalTrialSiteID: true, tag.ClinicalTrialSiteName: true,
	tag.ClinicalTrialSubjectID: true, tag.ClinicalTrialSubjectReadingID: true,
	tag.ClinicalTrialProtocolEthicsCommitteeName:           true,
	tag.ClinicalTrialProtocolEthicsCommitteeApprovalNumber: true,
	// General Study
	tag.StudyInstanceUID: true, tag.StudyDate: true, tag.StudyTime: true,
	tag.ReferringPhysicianName: true, tag.ReferringPhysicianIdentificationSequence: true,
	tag.ConsultingPhysicianName: true, tag.ConsultingPhysicianIdentificationSequence: true,
	tag.StudyID: true, tag.AccessionNumber: true, tag.IssuerOfAccessionNumberSequence: true,
	tag.StudyDescription: true, tag.PhysiciansOfRecord: true,
	tag.PhysiciansOfRecordIdentificationSequence: true, tag.NameOfPhysiciansReadingStudy: true,
	tag.PhysiciansReadingStudyIdentificationSequence: true, tag.RequestingServiceCodeSequence: true,
	tag.ReferencedStudySequence: true, tag.ProcedureCodeSequence: true,
	tag.ReasonForPerformedProcedureCodeSequence: true,
	// Patient Study
	tag.AdmittingDiagnosesDescription: true, tag.AdmittingDiagnosesCodeSequence: true,
	tag.PatientAge: true, tag.PatientSize: true, tag.PatientWeight: true,
	tag.PatientBodyMassIndex: true, tag.MeasuredAPDimension: true, tag.MeasuredLateralDimension: true,
	tag.PatientSizeCodeSequence: true, tag.MedicalAlerts: true, tag.Allergies: true,
	tag.SmokingStatus: true, tag.PregnancyStatus: true, tag.LastMenstrualDate: true,
	tag.PatientState: true, tag.Occupation: true, tag.AdditionalPatientHistory: true,
	tag.AdmissionID: true, tag.IssuerOfAdmissionIDSequence: true, tag.ServiceEpisodeID: true,
	tag.IssuerOfServiceEpisodeIDSequence: true, tag.ServiceEpisodeDescription: true,
	tag.PatientSexNeutered: true, tag.ReasonForVisit: true, tag.ReasonForVisitCodeSequence: true,
	// Clinical Trial Study
	tag.ClinicalTrialTimePointID: true, tag.ClinicalTrialTimePointDescription: true,
	tag.LongitudinalTemporalOffsetFromEvent: true, tag.LongitudinalTemporalEventType: true,
	tag.ClinicalTrialTimePointTypeCodeSequence: true, tag.ConsentForClinicalTrialUseSequence: true,
}

// part10Header is the preamble and "DICM" prefix of a Part 10 file.
const part10Header = 128 + 4

// lastCopiedGroup is the highest group of a copied attribute: reading the
// source stops at the first element beyond it, long before pixel data.
const lastCopiedGroup = 0x0040

// type2 are the copied attributes of Type 2 (PS3.3 C.7.1.1, C.7.2.1): a
// document has them, empty where the source lacks them.
var type2 = []tag.Tag{
	tag.PatientName, tag.PatientID, tag.PatientBirthDate, tag.PatientSex,
	tag.StudyDate, tag.StudyTime, tag.ReferringPhysicianName, tag.StudyID, tag.AccessionNumber,
}

// source is what a document takes from the source instance.
type source struct {
	studyUID string
	els      []*dicom.Element // the copied attributes found, in source order
}

// readSource parses r up to the copied attributes. Errors never quote
// the source's values (they hold patient data): a parse error keeps its
// cause for errors.Unwrap but does not print it. A panic of the parser
// (it has some on odd input) is such an error too.
func readSource(r io.Reader) (src source, err error) {
	if r == nil {
		return source{}, fmt.Errorf("%w: none given", ErrSource)
	}
	// Part 10 only (PS3.10 7.1): suyashkumar/dicom would guess at anything
	// else and believe whatever lengths it found.
	br := bufio.NewReader(r)
	if head, err := br.Peek(part10Header); err != nil || string(head[part10Header-4:]) != "DICM" {
		return source{}, fmt.Errorf("%w: not a Part 10 file", ErrSource)
	}
	// Unknown character sets are left undecoded: their bytes are copied as
	// they are.
	defer func() {
		if p := recover(); p != nil {
			src, err = source{}, &sourceError{fmt.Errorf("parser panic: %v", p)}
		}
	}()
	p, err := dicom.NewParser(br, dicomio.LimitReadUntilEOF, nil, dicom.SkipPixelData(), dicom.AllowUnknownSpecificCharacterSet())
	if err != nil {
		return source{}, &sourceError{err}
	}
	for {
		e, err := p.Next()
		if errors.Is(err, dicom.ErrorEndOfDICOM) || errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return source{}, &sourceError{err}
		}
		if e.Tag.Group > lastCopiedGroup {
			break
		}
		if !copied[e.Tag] {
			continue
		}
		src.els = append(src.els, e)
		if e.Tag == tag.StudyInstanceUID {
			if v := e.Value.GetValue().([]string); len(v) == 1 {
				src.studyUID = v[0]
			}
		}
	}
	if src.studyUID == "" {
		return source{}, fmt.Errorf("%w: no Study Instance UID", ErrSource)
	}
	if err := src.reencode(); err != nil {
		return source{}, err
	}
	return src, nil
}

// sourceError is a parse error of the source: its message names no value
// of the source, the cause stays reachable through Unwrap.
type sourceError struct{ cause error }

func (e *sourceError) Error() string {
	return ErrSource.Error() + ": cannot parse it (detail withheld: it may quote patient data)"
}

func (e *sourceError) Unwrap() []error { return []error{ErrSource, e.cause} }

// htmlEncodings is the table of suyashkumar/dicom v1.1.0 pkg/charset (not
// exported there): the encoding it decodes each Specific Character Set
// term with (PS3.3 C.12.1.1.2), "ISO_IR 192" being UTF-8 already. Its
// "ISO_IR 166" and "ISO 2022 IR 166" (Thai) name no encoding that
// x/text knows: the parser panics on them, and readSource turns that
// into ErrSource. Decoding is one to one on valid text, so encoding gives
// the source's bytes back; a byte sequence a set does not define may come
// back as another or be refused (ErrSource).
var htmlEncodings = map[string]string{
	"":                "iso-8859-1",
	"ISO_IR 6":        "iso-8859-1",
	"ISO 2022 IR 6":   "iso-8859-1",
	"ISO_IR 13":       "shift_jis",
	"ISO 2022 IR 13":  "shift_jis",
	"ISO_IR 100":      "iso-8859-1",
	"ISO 2022 IR 100": "iso-8859-1",
	"ISO_IR 101":      "iso-8859-2",
	"ISO 2022 IR 101": "iso-8859-2",
	"ISO_IR 109":      "iso-8859-3",
	"ISO 2022 IR 109": "iso-8859-3",
	"ISO_IR 110":      "iso-8859-4",
	"ISO 2022 IR 110": "iso-8859-4",
	"ISO_IR 126":      "iso-ir-126",
	"ISO 2022 IR 126": "iso-ir-126",
	"ISO_IR 127":      "iso-ir-127",
	"ISO 2022 IR 127": "iso-ir-127",
	"ISO_IR 138":      "iso-ir-138",
	"ISO 2022 IR 138": "iso-ir-138",
	"ISO_IR 144":      "iso-ir-144",
	"ISO 2022 IR 144": "iso-ir-144",
	"ISO_IR 148":      "iso-ir-148",
	"ISO 2022 IR 148": "iso-ir-148",
	"ISO 2022 IR 149": "euc-kr",
	"ISO 2022 IR 159": "iso-2022-jp",
	"ISO 2022 IR 87":  "iso-2022-jp",
	"ISO 2022 IR 58":  "iso-ir-58",
	"GB18030":         "gb18030",
	"GBK":             "gbk",
}

// sourceEncoding is the encoding suyashkumar/dicom decoded the source's text
// values with, given its Specific Character Set: the second term when
// there are several, else the first (pkg/charset CodingSystem.Ideographic,
// used for every VR); nil when it left them as they were.
func sourceEncoding(terms []string) (encoding.Encoding, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	term := terms[0]
	if len(terms) > 1 {
		term = terms[1]
	}
	name, ok := htmlEncodings[term]
	if !ok {
		return nil, nil // UTF-8 or unknown: not decoded
	}
	return htmlindex.Get(name)
}

// reencode undoes the character set decoding of suyashkumar/dicom, which
// turns every string value into UTF-8 while the Specific Character Set
// still says otherwise: the copied values get their source bytes back.
func (s *source) reencode() error {
	var terms []string
	for _, e := range s.els {
		if e.Tag == tag.SpecificCharacterSet {
			terms = e.Value.GetValue().([]string)
		}
	}
	enc, err := sourceEncoding(terms)
	if err != nil || enc == nil {
		return err
	}
	return encodeStrings(s.els, enc.NewEncoder())
}

func encodeStrings(els []*dicom.Element, enc *encoding.Encoder) error {
	for _, e := range els {
		switch e.Value.ValueType() {
		case dicom.Strings:
			vals := e.Value.GetValue().([]string)
			out := make([]string, len(vals))
			for i, v := range vals {
				b, err := enc.String(v)
				if err != nil {
					return fmt.Errorf("%w: %s does not encode back into its character set", ErrSource, tag.DebugString(e.Tag))
				}
				out[i] = b
			}
			v, err := dicom.NewValue(out)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrSource, tag.DebugString(e.Tag), err)
			}
			e.Value = v
		case dicom.Sequences:
			for _, item := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
				if err := encodeStrings(item.GetValue().([]*dicom.Element), enc); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
