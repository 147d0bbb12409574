package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/dcm"
)

// Test data sets are built by hand in explicit VR little endian (PS3.5
// 7.1.2), the way dcm's own tests build theirs.

const (
	ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	mrImageStorage = "1.2.840.10008.5.1.4.1.1.4"
	testStudyUID   = "1.2.826.0.1.3680043.10.999.1"
	testSeriesUID  = "1.2.826.0.1.3680043.10.999.1.1"
)

// ds describes a small test instance. Zero fields get defaults from
// (ds).withDefaults.
type ds struct {
	sop, class, study, series string
	patientID, patientName    string
	modality                  string
	instanceNumber            string
	pixels                    int  // bytes of OW pixel data
	fill                      byte // pixel value, to vary content
	omit                      dcm.Tag
}

func (d ds) withDefaults() ds {
	if d.class == "" {
		d.class = ctImageStorage
	}
	if d.study == "" {
		d.study = testStudyUID
	}
	if d.series == "" {
		d.series = testSeriesUID
	}
	if d.patientID == "" {
		d.patientID = "PID-0001"
	}
	if d.patientName == "" {
		d.patientName = "Doe^Jane"
	}
	if d.modality == "" {
		d.modality = "CT"
	}
	if d.instanceNumber == "" {
		d.instanceNumber = "1"
	}
	if d.pixels == 0 {
		d.pixels = 64
	}
	return d
}

// bytes encodes the data set, elements in ascending tag order.
func (d ds) bytes() []byte {
	d = d.withDefaults()
	var b []byte
	add := func(t dcm.Tag, vr, v string) {
		if t == d.omit {
			return
		}
		b = appendStr(b, t, vr, v)
	}
	add(dcm.SpecificCharacterSet, "CS", "ISO_IR 100")
	add(dcm.SOPClassUID, "UI", d.class)
	add(dcm.SOPInstanceUID, "UI", d.sop)
	add(dcm.StudyDate, "DA", "20240131")
	add(dcm.StudyTime, "TM", "101500")
	add(dcm.AccessionNumber, "SH", "ACC123")
	add(dcm.Modality, "CS", d.modality)
	add(dcm.ReferringPhysicianName, "PN", "Ref^Doc")
	add(dcm.StudyDescription, "LO", "CT HEAD")
	add(dcm.SeriesDescription, "LO", "AXIAL")
	add(dcm.PatientName, "PN", d.patientName)
	add(dcm.PatientID, "LO", d.patientID)
	add(dcm.PatientBirthDate, "DA", "19700101")
	add(dcm.PatientSex, "CS", "F")
	add(dcm.BodyPartExamined, "CS", "HEAD")
	add(dcm.StudyInstanceUID, "UI", d.study)
	add(dcm.SeriesInstanceUID, "UI", d.series)
	add(dcm.StudyID, "SH", "S1")
	add(dcm.SeriesNumber, "IS", "2")
	add(dcm.InstanceNumber, "IS", d.instanceNumber)
	if d.omit != dcm.Rows {
		b = appendUS(b, dcm.Rows, 512)
		b = appendUS(b, dcm.Columns, 512)
	}
	b = appendHeader(b, dcm.PixelData, "OW", uint32(d.pixels))
	return append(b, bytes.Repeat([]byte{d.fill}, d.pixels)...)
}

// want is the index record expected for d (reception and storage fields
// left zero).
func (d ds) want() Instance {
	d = d.withDefaults()
	return Instance{
		SOPInstanceUID: d.sop, SOPClassUID: d.class, SeriesInstanceUID: d.series, StudyInstanceUID: d.study,
		PatientID: d.patientID, PatientName: d.patientName, PatientBirthDate: "19700101", PatientSex: "F",
		StudyDate: "20240131", StudyTime: "101500", AccessionNumber: "ACC123", StudyDescription: "CT HEAD",
		ReferringPhysicianName: "Ref^Doc", StudyID: "S1",
		Modality: d.modality, SeriesNumber: "2", SeriesDescription: "AXIAL", BodyPartExamined: "HEAD",
		InstanceNumber: d.instanceNumber, Rows: 512, Columns: 512, SpecificCharacterSet: "ISO_IR 100",
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian,
	}
}

func (d ds) incoming() Incoming {
	d = d.withDefaults()
	return Incoming{
		SOPClassUID: d.class, SOPInstanceUID: d.sop, TransferSyntaxUID: dcm.ExplicitVRLittleEndian,
		CallingAE: "MODALITY1", CalledAE: "RADGATE", RemoteAddr: "192.0.2.7:40000", Source: "dimse",
	}
}

func appendHeader(b []byte, t dcm.Tag, vr string, n uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = append(b, vr...)
	switch vr {
	case "OB", "OW", "SQ", "UN", "UT", "UC", "UR":
		b = append(b, 0, 0)
		return binary.LittleEndian.AppendUint32(b, n)
	}
	return binary.LittleEndian.AppendUint16(b, uint16(n))
}

func appendStr(b []byte, t dcm.Tag, vr, v string) []byte {
	if len(v)%2 == 1 {
		if vr == "UI" {
			v += "\x00"
		} else {
			v += " "
		}
	}
	b = appendHeader(b, t, vr, uint32(len(v)))
	return append(b, v...)
}

func appendUS(b []byte, t dcm.Tag, v uint16) []byte {
	b = appendHeader(b, t, "US", 2)
	return binary.LittleEndian.AppendUint16(b, v)
}

// testSegmentSize keeps the tests' segments (and the spares Open makes)
// small; several instances then fill one, so sealing and reclaiming run.
const testSegmentSize = 1 << 20

// openTest opens a store in a fresh directory, closed at cleanup.
func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = testSegmentSize
	}
	s, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// files lists the regular files under dir (relative paths, sorted).
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// committed lists the committed instance records of the log under
// dataDir (LogRecords: the way replay walks it, without a Store). Each
// must hold a Part 10 file that parses to the end.
func committed(t testing.TB, dataDir string) map[string]bool {
	t.Helper()
	list, err := LogRecords(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, key := range list {
		rc, err := OpenBlobFile(dataDir, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		meta, rest, err := dcm.OpenPart10(bytes.NewReader(b))
		if err != nil {
			t.Errorf("record %s: %v", key, err)
			continue
		}
		ts, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
		if !ok {
			t.Errorf("record %s: transfer syntax %q", key, meta.TransferSyntaxUID)
			continue
		}
		if _, err := dcm.ScanDataset(rest, ts, nil); err != nil {
			t.Errorf("record %s: %v", key, err)
		}
		keys[key] = true
	}
	return keys
}

// readBlob reads a whole blob through the Store.
func readBlob(t testing.TB, s *Store, key string) []byte {
	t.Helper()
	rc, err := s.OpenBlob(context.Background(), key)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// part10 is the file Ingest should write for d received as in.
func part10(t testing.TB, in Incoming, dataset []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := dcm.WriteFileMeta(&buf, dcm.FileMeta{
		MediaStorageSOPClassUID:      in.SOPClassUID,
		MediaStorageSOPInstanceUID:   in.SOPInstanceUID,
		TransferSyntaxUID:            in.TransferSyntaxUID,
		ImplementationClassUID:       dcm.ImplementationClassUID,
		ImplementationVersionName:    dcm.ImplementationVersionName,
		SourceApplicationEntityTitle: in.CallingAE,
	})
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(dataset)
	return buf.Bytes()
}

// ingestReplacing ingests n instances (SOP UIDs prefix+i, pixels bytes of
// pixel data each), then a new content for instance replaced (of
// replacedPixels), and returns what was sent and the n current records.
func ingestReplacing(t *testing.T, s *Store, prefix string, n, pixels, replaced, replacedPixels int) ([]ds, []Instance) {
	t.Helper()
	ctx := context.Background()
	var sent []ds
	for i := range n {
		sent = append(sent, ds{sop: fmt.Sprintf("%s%d", prefix, i), pixels: pixels, fill: byte(i)})
	}
	sent = append(sent, ds{sop: sent[replaced].sop, pixels: replacedPixels, fill: 0xEE})
	for _, d := range sent {
		if _, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); err != nil {
			t.Fatal(err)
		}
	}
	s.CountInstances(ctx)
	var before []Instance
	for _, d := range sent[:n] {
		in, err := s.Instance(ctx, d.sop)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, in)
	}
	return sent, before
}
