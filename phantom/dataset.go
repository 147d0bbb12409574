package phantom

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/internal/dsbuild"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// UIDs and texts every phantom carries.
const (
	// implClassUID names this generator in the file meta (PS3.7 D.3.3.2);
	// dcm.HashUID("radgate phantom implementation").
	implClassUID    = "2.25.227550520144625376382156499636955826079"
	implVersionName = "RADGATE_PHANTOM1"
	// generatorVersion is SoftwareVersions; change it whenever Generate
	// writes different bytes for the same Spec.
	generatorVersion = "radgate-phantom 1"

	// Notice goes into the descriptions and comments of every phantom.
	Notice       = "SYNTHETIC PHANTOM - NOT FOR CLINICAL USE"
	manufacturer = "radgate phantom"
)

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
func (s Spec) common(id identity, se series) *dsbuild.Builder {
	b := &dsbuild.Builder{}
	b.FileMeta(se.sopClass, se.sopInstance, implClassUID, implVersionName)

	b.Str(tag.SOPClassUID, se.sopClass)
	b.Str(tag.SOPInstanceUID, se.sopInstance)
	b.Str(tag.InstanceCreationDate, id.studyDate)
	b.Str(tag.InstanceCreationTime, se.acquisition)

	b.Str(tag.PatientName, id.name)
	b.Str(tag.PatientID, id.id)
	b.Str(tag.PatientBirthDate, id.birthDate)
	b.Str(tag.PatientSex, id.sex)
	b.Str(tag.PatientAge, id.age)
	b.Str(tag.PatientComments, Notice)

	b.Str(tag.StudyInstanceUID, s.StudyInstanceUID())
	b.Str(tag.StudyDate, id.studyDate)
	b.Str(tag.StudyTime, id.studyTime)
	b.Str(tag.ReferringPhysicianName, "")
	b.Str(tag.StudyID, id.studyID)
	b.Str(tag.AccessionNumber, id.accession)
	b.Str(tag.StudyDescription, Notice)

	b.Str(tag.Modality, se.modality)
	b.Str(tag.SeriesInstanceUID, se.seriesUID)
	b.Str(tag.SeriesNumber, strconv.Itoa(se.seriesNumber))
	b.Str(tag.SeriesDate, id.studyDate)
	b.Str(tag.SeriesTime, se.acquisition)
	b.Str(tag.SeriesDescription, Notice)

	b.Str(tag.Manufacturer, manufacturer)
	b.Str(tag.InstitutionName, manufacturer)
	b.Str(tag.StationName, "PHANTOM")
	b.Str(tag.ManufacturerModelName, se.model)
	b.Str(tag.SoftwareVersions, generatorVersion)

	b.Str(tag.InstanceNumber, strconv.Itoa(se.instanceNumber))
	b.Str(tag.ContentDate, id.studyDate)
	b.Str(tag.ContentTime, se.acquisition)
	b.Str(tag.AcquisitionDate, id.studyDate)
	b.Str(tag.AcquisitionTime, se.acquisition)
	b.Str(tag.ImageComments, Notice)
	b.Str(tag.BurnedInAnnotation, "NO")
	b.Str(tag.LossyImageCompression, "00")
	return b
}

// imagePixel adds the Image Pixel module (PS3.3 C.7.6.3) for one
// monochrome frame of 16-bit words: PixelData holds raw little-endian
// words as they are.
func imagePixel(b *dsbuild.Builder, rows, cols, bitsStored, pixelRep int, raw []byte) {
	b.Ints(tag.SamplesPerPixel, 1)
	b.Str(tag.PhotometricInterpretation, "MONOCHROME2")
	b.Ints(tag.Rows, rows)
	b.Ints(tag.Columns, cols)
	b.Ints(tag.BitsAllocated, 16)
	b.Ints(tag.BitsStored, bitsStored)
	b.Ints(tag.HighBit, bitsStored-1)
	b.Ints(tag.PixelRepresentation, pixelRep)
	b.Add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})
}
