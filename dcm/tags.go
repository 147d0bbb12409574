package dcm

// Tag is a DICOM data element tag (group<<16 | element), PS3.5 7.1.
type Tag uint32

// NewTag returns the tag (group,element).
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

// String formats t as "(gggg,eeee)" in upper-case hex, as PS3.6 lists tags.
func (t Tag) String() string {
	const hex = "0123456789ABCDEF"
	var b [11]byte
	b[0], b[5], b[10] = '(', ',', ')'
	for i := 0; i < 4; i++ {
		b[4-i] = hex[(t>>(16+4*i))&0xF]
		b[9-i] = hex[(t>>(4*i))&0xF]
	}
	return string(b[:])
}

// GoString makes %#v print tags readably in test diffs.
func (t Tag) GoString() string { return "dcm.Tag" + t.String() }

// Tags stored by the instance index (PS3.6 Table 6-1).
const (
	SpecificCharacterSet   Tag = 0x00080005 // CS
	SOPClassUID            Tag = 0x00080016 // UI
	SOPInstanceUID         Tag = 0x00080018 // UI
	StudyDate              Tag = 0x00080020 // DA
	SeriesDate             Tag = 0x00080021 // DA
	ContentDate            Tag = 0x00080023 // DA
	StudyTime              Tag = 0x00080030 // TM
	AccessionNumber        Tag = 0x00080050 // SH
	Modality               Tag = 0x00080060 // CS
	InstitutionName        Tag = 0x00080080 // LO
	ReferringPhysicianName Tag = 0x00080090 // PN
	StudyDescription       Tag = 0x00081030 // LO
	SeriesDescription      Tag = 0x0008103E // LO
	PatientName            Tag = 0x00100010 // PN
	PatientID              Tag = 0x00100020 // LO
	PatientBirthDate       Tag = 0x00100030 // DA
	PatientSex             Tag = 0x00100040 // CS
	BodyPartExamined       Tag = 0x00180015 // CS
	StudyInstanceUID       Tag = 0x0020000D // UI
	SeriesInstanceUID      Tag = 0x0020000E // UI
	StudyID                Tag = 0x00200010 // SH
	SeriesNumber           Tag = 0x00200011 // IS
	InstanceNumber         Tag = 0x00200013 // IS
	NumberOfFrames         Tag = 0x00280008 // IS
	Rows                   Tag = 0x00280010 // US
	Columns                Tag = 0x00280011 // US
	PixelData              Tag = 0x7FE00010 // OB or OW
)

// Structural tags of PS3.5 7.5.
const (
	Item                     Tag = 0xFFFEE000
	ItemDelimitationItem     Tag = 0xFFFEE00D
	SequenceDelimitationItem Tag = 0xFFFEE0DD
	DataSetTrailingPadding   Tag = 0xFFFCFFFC
)

// File Meta Information elements, PS3.10 Table 7.1-1.
const (
	tagMetaGroupLength              Tag = 0x00020000
	tagMetaVersion                  Tag = 0x00020001
	tagMediaStorageSOPClassUID      Tag = 0x00020002
	tagMediaStorageSOPInstanceUID   Tag = 0x00020003
	tagTransferSyntaxUID            Tag = 0x00020010
	tagImplementationClassUID       Tag = 0x00020012
	tagImplementationVersionName    Tag = 0x00020013
	tagSourceApplicationEntityTitle Tag = 0x00020016
)
