package phantom

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// UIDs and texts every phantom carries.
const (
	uidExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	// implClassUID names this generator in the file meta (PS3.7 D.3.3.2);
	// a 2.25 UID from the SHA-256 of "radgate phantom implementation",
	// derived as Spec.uid derives its UIDs.
	implClassUID    = "2.25.227550520144625376382156499636955826079"
	implVersionName = "RADGATE_PHANTOM1"
	// generatorVersion is SoftwareVersions; change it whenever Generate
	// writes different bytes for the same Spec.
	generatorVersion = "radgate-phantom 1"

	// Notice goes into the descriptions and comments of every phantom.
	Notice       = "SYNTHETIC PHANTOM - NOT FOR CLINICAL USE"
	manufacturer = "radgate phantom"
)

// builder collects the elements of a dataset (or of a sequence item) and
// keeps the first error.
type builder struct {
	els []*dicom.Element
	err error
}

func (b *builder) add(t tag.Tag, v any) {
	if b.err != nil {
		return
	}
	e, err := dicom.NewElement(t, v)
	if err != nil {
		b.err = fmt.Errorf("phantom: element %s: %w", tag.DebugString(t), err)
		return
	}
	b.els = append(b.els, e)
}

func (b *builder) str(t tag.Tag, v ...string) { b.add(t, v) }
func (b *builder) ints(t tag.Tag, v ...int)   { b.add(t, v) }

// seq adds a sequence of the items (none: an empty sequence).
func (b *builder) seq(t tag.Tag, items ...*builder) {
	vals := make([][]*dicom.Element, 0, len(items))
	for _, it := range items {
		if it.err != nil && b.err == nil {
			b.err = it.err
		}
		vals = append(vals, it.els)
	}
	b.add(t, vals)
}

// codeItem is a code sequence item (PS3.3 Table 8.8-1a).
func codeItem(value, scheme, meaning string) *builder {
	it := &builder{}
	it.str(tag.CodeValue, value)
	it.str(tag.CodingSchemeDesignator, scheme)
	it.str(tag.CodeMeaning, meaning)
	return it
}

// encode writes b as a Part 10 file in explicit VR little endian.
// suyashkumar/dicom writes elements in the order given, so they are sorted
// by tag first, items included (PS3.5 7.1: ascending order).
func encode(b *builder, sizeHint int) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	sortElements(b.els)
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	if err := dicom.Write(&buf, dicom.Dataset{Elements: b.els}); err != nil {
		return nil, fmt.Errorf("phantom: write: %w", err)
	}
	return buf.Bytes(), nil
}

func sortElements(els []*dicom.Element) {
	slices.SortFunc(els, func(a, b *dicom.Element) int {
		return int(a.Tag.Uint32()) - int(b.Tag.Uint32())
	})
	for _, e := range els {
		if e.Value.ValueType() != dicom.Sequences {
			continue
		}
		for _, item := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
			sortElements(item.GetValue().([]*dicom.Element))
		}
	}
}

// ds formats a decimal string (PS3.5 6.2 DS) to at most 4 decimals.
func ds(v float64) string {
	r := math.Round(v*1e4) / 1e4
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

func dsList(v ...float64) []string {
	out := make([]string, len(v))
	for i, f := range v {
		out[i] = ds(f)
	}
	return out
}

// pixelData is a native PixelData element holding raw little-endian words.
func (b *builder) pixelData(raw []byte) {
	b.add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})
}

// identity is the synthetic patient and study of a spec: distinctive
// names no real person has, and dates derived from the seed.
type identity struct {
	name, id, sex, age, birthDate string
	studyDate, studyTime          string
	accession, studyID            string
}

func (s Spec) identity() identity {
	seed := strconv.FormatUint(s.Seed, 10)
	h := digest("radgate-phantom", string(s.Kind), "identity", seed)
	day := int(s.Seed % 7300) // 20 years of study dates from 2001
	study := time.Date(2001, 1, 1, 8, 0, 0, 0, time.UTC).AddDate(0, 0, day).
		Add(time.Duration(int(h[0])%10)*time.Hour + time.Duration(int(h[1])%60)*time.Minute + time.Duration(int(h[2])%60)*time.Second)
	years := 20 + int(h[3])%70
	birth := study.AddDate(-years, -int(h[4])%12, -int(h[5])%28)
	sex := "F"
	if h[6]&1 == 1 {
		sex = "M"
	}
	family := "CXR"
	if s.Kind == KindCTHead {
		family = "CTHEAD"
	}
	acc := fmt.Sprintf("PH%x", h[8:14])
	return identity{
		name:      "PHANTOM^" + family + "^" + seed,
		id:        "PH-" + string(s.Kind) + "-" + seed,
		sex:       sex,
		age:       fmt.Sprintf("%03dY", ageYears(birth, study)),
		birthDate: birth.Format("20060102"),
		studyDate: study.Format("20060102"),
		studyTime: study.Format("150405"),
		accession: strings.ToUpper(acc),
		studyID:   acc[2:10],
	}
}

func ageYears(birth, at time.Time) int {
	y := at.Year() - birth.Year()
	if at.YearDay() < birth.YearDay() {
		y--
	}
	return y
}

// series says what the common modules of one instance carry.
type series struct {
	sopClass       string
	sopInstance    string
	modality       string
	seriesUID      string
	seriesNumber   int
	instanceNumber int
	model          string // ManufacturerModelName
	acquisition    string // time of acquisition, HHMMSS
}

// common adds the file meta and the Patient, General Study, General
// Series, General Equipment, General Image (in part) and SOP Common
// modules (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.7.5.1, C.7.6.1, C.12.1).
func (s Spec) common(id identity, se series) *builder {
	b := &builder{}
	b.add(tag.FileMetaInformationVersion, []byte{0, 1})
	b.str(tag.MediaStorageSOPClassUID, se.sopClass)
	b.str(tag.MediaStorageSOPInstanceUID, se.sopInstance)
	b.str(tag.TransferSyntaxUID, uidExplicitVRLittleEndian)
	b.str(tag.ImplementationClassUID, implClassUID)
	b.str(tag.ImplementationVersionName, implVersionName)

	b.str(tag.SOPClassUID, se.sopClass)
	b.str(tag.SOPInstanceUID, se.sopInstance)
	b.str(tag.InstanceCreationDate, id.studyDate)
	b.str(tag.InstanceCreationTime, se.acquisition)

	b.str(tag.PatientName, id.name)
	b.str(tag.PatientID, id.id)
	b.str(tag.PatientBirthDate, id.birthDate)
	b.str(tag.PatientSex, id.sex)
	b.str(tag.PatientAge, id.age)
	b.str(tag.PatientComments, Notice)

	b.str(tag.StudyInstanceUID, s.StudyInstanceUID())
	b.str(tag.StudyDate, id.studyDate)
	b.str(tag.StudyTime, id.studyTime)
	b.str(tag.ReferringPhysicianName, "")
	b.str(tag.StudyID, id.studyID)
	b.str(tag.AccessionNumber, id.accession)
	b.str(tag.StudyDescription, Notice)

	b.str(tag.Modality, se.modality)
	b.str(tag.SeriesInstanceUID, se.seriesUID)
	b.str(tag.SeriesNumber, strconv.Itoa(se.seriesNumber))
	b.str(tag.SeriesDate, id.studyDate)
	b.str(tag.SeriesTime, se.acquisition)
	b.str(tag.SeriesDescription, Notice)

	b.str(tag.Manufacturer, manufacturer)
	b.str(tag.InstitutionName, manufacturer)
	b.str(tag.StationName, "PHANTOM")
	b.str(tag.ManufacturerModelName, se.model)
	b.str(tag.SoftwareVersions, generatorVersion)

	b.str(tag.InstanceNumber, strconv.Itoa(se.instanceNumber))
	b.str(tag.ContentDate, id.studyDate)
	b.str(tag.ContentTime, se.acquisition)
	b.str(tag.AcquisitionDate, id.studyDate)
	b.str(tag.AcquisitionTime, se.acquisition)
	b.str(tag.ImageComments, Notice)
	b.str(tag.BurnedInAnnotation, "NO")
	b.str(tag.LossyImageCompression, "00")
	return b
}

// imagePixel adds the Image Pixel module (PS3.3 C.7.6.3) for one
// monochrome frame of 16-bit words.
func (b *builder) imagePixel(rows, cols, bitsStored, pixelRep int, raw []byte) {
	b.ints(tag.SamplesPerPixel, 1)
	b.str(tag.PhotometricInterpretation, "MONOCHROME2")
	b.ints(tag.Rows, rows)
	b.ints(tag.Columns, cols)
	b.ints(tag.BitsAllocated, 16)
	b.ints(tag.BitsStored, bitsStored)
	b.ints(tag.HighBit, bitsStored-1)
	b.ints(tag.PixelRepresentation, pixelRep)
	b.pixelData(raw)
}
