package dcm

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// indexWant is what the instance index asks ScanDataset for.
var indexWant = []Tag{
	SpecificCharacterSet, SOPClassUID, SOPInstanceUID, StudyDate, SeriesDate, ContentDate, StudyTime,
	AccessionNumber, Modality, InstitutionName, ReferringPhysicianName, StudyDescription, SeriesDescription,
	PatientName, PatientID, PatientBirthDate, PatientSex, BodyPartExamined, StudyInstanceUID,
	SeriesInstanceUID, StudyID, SeriesNumber, InstanceNumber, NumberOfFrames, Rows, Columns,
}

// ctLikeDataSet builds a 512x512x16-bit explicit VR little endian CT data
// set of about 530 KB with a realistic header: ~120 elements, two
// sequences and a private block.
func ctLikeDataSet() []byte {
	e := tExplicit
	parts := [][]byte{
		e.str(SpecificCharacterSet, "CS", "ISO_IR 100"),
		e.str(0x00080008, "CS", `ORIGINAL\PRIMARY\AXIAL`),
		e.str(0x00080012, "DA", "20240101"),
		e.str(0x00080013, "TM", "101010.123"),
		e.str(SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.2"),
		e.str(SOPInstanceUID, "UI", "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345"),
		e.str(StudyDate, "DA", "20240101"),
		e.str(SeriesDate, "DA", "20240101"),
		e.str(0x00080022, "DA", "20240101"),
		e.str(ContentDate, "DA", "20240101"),
		e.str(StudyTime, "TM", "101010"),
		e.str(0x00080031, "TM", "101010"),
		e.str(0x00080032, "TM", "101010"),
		e.str(0x00080033, "TM", "101010"),
		e.str(AccessionNumber, "SH", "ACC123456"),
		e.str(Modality, "CS", "CT"),
		e.str(0x00080070, "LO", "ACME Medical"),
		e.str(InstitutionName, "LO", "General Hospital"),
		e.str(ReferringPhysicianName, "PN", "Smith^Jane"),
		e.str(0x00081010, "SH", "CT01"),
		e.str(StudyDescription, "LO", "CT CHEST W/O CONTRAST"),
		e.str(SeriesDescription, "LO", "AXIAL 1.25mm"),
		e.str(0x00081090, "LO", "Scanner 9000"),
		e.seq(0x00081140, e.item(e.str(0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2"), e.str(0x00081155, "UI", "1.2.3.4.5.6.7.8"))),
		e.str(PatientName, "PN", "Doe^John"),
		e.str(PatientID, "LO", "123456"),
		e.str(PatientBirthDate, "DA", "19700101"),
		e.str(PatientSex, "CS", "M"),
		e.str(0x00101010, "AS", "054Y"),
		e.str(BodyPartExamined, "CS", "CHEST"),
		e.str(0x00180050, "DS", "1.25"),
		e.str(0x00180060, "DS", "120"),
		e.str(0x00180088, "DS", "1.25"),
		e.str(0x00181020, "LO", "1.0"),
		e.str(0x00181030, "LO", "CHEST"),
		e.str(0x00181100, "DS", "350"),
		e.str(0x00181120, "DS", "0"),
		e.str(0x00181150, "IS", "1000"),
		e.str(0x00181151, "IS", "200"),
		e.str(0x00181152, "IS", "100"),
		e.str(0x00181160, "SH", "BODY"),
		e.str(0x00181210, "SH", "STANDARD"),
		e.str(0x00185100, "CS", "HFS"),
		e.str(StudyInstanceUID, "UI", "1.2.826.0.1.3680043.8.498.1"),
		e.str(SeriesInstanceUID, "UI", "1.2.826.0.1.3680043.8.498.1.2"),
		e.str(StudyID, "SH", "1"),
		e.str(SeriesNumber, "IS", "2"),
		e.str(0x00200012, "IS", "1"),
		e.str(InstanceNumber, "IS", "42"),
		e.str(0x00200032, "DS", `-175.0\-175.0\-52.5`),
		e.str(0x00200037, "DS", `1\0\0\0\1\0`),
		e.str(0x00200052, "UI", "1.2.826.0.1.3680043.8.498.1.3"),
		e.str(0x00201040, "LO", ""),
		e.str(0x00201041, "DS", "-52.5"),
		e.us(0x00280002, 1),
		e.str(0x00280004, "CS", "MONOCHROME2"),
		e.us(Rows, 512),
		e.us(Columns, 512),
		e.str(0x00280030, "DS", `0.683\0.683`),
		e.us(0x00280100, 16),
		e.us(0x00280101, 12),
		e.us(0x00280102, 11),
		e.us(0x00280103, 0),
		e.str(0x00281050, "DS", "40"),
		e.str(0x00281051, "DS", "400"),
		e.str(0x00281052, "DS", "-1024"),
		e.str(0x00281053, "DS", "1"),
		e.str(0x00290010, "LO", "ACME PRIVATE"),
	}
	for i := 0; i < 40; i++ {
		parts = append(parts, e.el(Tag(0x00291000+i), "OB", make([]byte, 24)))
	}
	parts = append(parts, e.seq(0x00400275, e.item(e.str(0x00321060, "LO", "CT CHEST"), e.str(0x00400007, "LO", "CHEST"))))
	parts = append(parts, e.el(PixelData, "OW", make([]byte, 512*512*2)))
	return cat(parts...)
}

func BenchmarkScanDataset(b *testing.B) {
	data := ctLikeDataSet()
	ts := mustTS(b, ExplicitVRLittleEndian)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := bytes.NewReader(data)
	var sc Scanner
	for b.Loop() {
		r.Reset(data)
		attrs, err := sc.Scan(r, ts, indexWant)
		if err != nil || len(attrs) != len(indexWant)-1 {
			b.Fatal(err, len(attrs))
		}
	}
}

// BenchmarkScanDatasetHeader scans the same data set without its pixel
// data: the parsing cost apart from moving bulk bytes.
func BenchmarkScanDatasetHeader(b *testing.B) {
	data := ctLikeDataSet()
	data = data[:len(data)-512*512*2-12]
	ts := mustTS(b, ExplicitVRLittleEndian)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := bytes.NewReader(data)
	var sc Scanner
	for b.Loop() {
		r.Reset(data)
		if _, err := sc.Scan(r, ts, indexWant); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopy is the floor: moving the same bytes through a 64 KiB buffer.
func BenchmarkCopy(b *testing.B) {
	data := ctLikeDataSet()
	b.SetBytes(int64(len(data)))
	r := bytes.NewReader(data)
	buf := make([]byte, scanBufferSize)
	for b.Loop() {
		r.Reset(data)
		io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
	}
}

func BenchmarkOpenPart10AndScan(b *testing.B) {
	ds := ctLikeDataSet()
	data := part10(b, FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", MediaStorageSOPInstanceUID: "1.2.3", TransferSyntaxUID: ExplicitVRLittleEndian}, ds)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := bytes.NewReader(data)
	var sc Scanner
	for b.Loop() {
		r.Reset(data)
		meta, rest, err := OpenPart10(r)
		if err != nil {
			b.Fatal(err)
		}
		ts, _ := LookupTransferSyntax(meta.TransferSyntaxUID)
		if _, err := sc.Scan(rest, ts, indexWant); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanDatasetNoReuse allocates the 64 KiB buffer on every call.
func BenchmarkScanDatasetNoReuse(b *testing.B) {
	data := ctLikeDataSet()
	ts := mustTS(b, ExplicitVRLittleEndian)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := bytes.NewReader(data)
	for b.Loop() {
		r.Reset(data)
		if _, err := ScanDataset(r, ts, indexWant); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanDatasetDeflated(b *testing.B) {
	data := deflate(b, ctLikeDataSet())
	ts := mustTS(b, DeflatedExplicitVRLittleEndian)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := bytes.NewReader(data)
	var sc Scanner
	for b.Loop() {
		r.Reset(data)
		if _, err := sc.Scan(r, ts, indexWant); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCTLikeDataSet(t *testing.T) {
	data := ctLikeDataSet()
	if n := len(data); n < 525000 || n > 540000 {
		t.Errorf("benchmark data set is %d bytes, want ~530 KB", n)
	}
	attrs, err := ScanDataset(bytes.NewReader(data), mustTS(t, ExplicitVRLittleEndian), indexWant)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range indexWant {
		if _, ok := attrs[tag]; !ok && tag != NumberOfFrames {
			t.Errorf("missing %v", tag)
		}
	}
	if got := fmt.Sprint(attrs[Rows], " ", attrs[InstanceNumber]); got != "512 42" {
		t.Errorf("rows, instance = %s", got)
	}
}
