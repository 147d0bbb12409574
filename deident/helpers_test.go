package deident

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/peertest"
)

const (
	ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	origUIDRoot    = "1.2.826.0.1.3680043.10.999."
	// instanceCreationDate stands for the dates not in the table.
	instanceCreationDate = "19870505"
)

// elem builds an element with an explicit VR, for tags the library's
// dictionary lacks (private, command group, overlays).
func elem(t tag.Tag, vr string, data any) *dicom.Element {
	v, err := dicom.NewValue(data)
	if err != nil {
		panic(err)
	}
	e := &dicom.Element{Tag: t, RawValueRepresentation: vr, ValueRepresentation: tag.GetVRKind(t, vr), Value: v}
	if v.ValueType() == dicom.Sequences {
		e.ValueLength = tag.VLUndefinedLength
	}
	return e
}

func vrOf(t tag.Tag) string {
	if t.Group == 0x0000 { // command group: Affected/Requested SOP Instance UID
		return "UI"
	}
	info, err := tag.Find(t)
	if err != nil {
		panic(fmt.Sprintf("%s not in the dictionary", tag.DebugString(t)))
	}
	return info.VRs[0]
}

// original is the distinctive value the generator gives row i (unique per
// row and per nesting, valid for the VR), and its rendering by dump.py.
func original(vr string, i, nest int) (any, string) {
	n := i + 1000*nest
	switch vr {
	case "PN":
		s := fmt.Sprintf("ORIG%d^PERSON", n)
		return []string{s}, s
	case "DA":
		s := time.Date(1987, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n).Format("20060102")
		return []string{s}, s
	case "DT":
		s := time.Date(1987, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n).Format("20060102") + "101112"
		return []string{s}, s
	case "TM":
		s := fmt.Sprintf("%02d%02d%02d", 1+n%22, n%60, 1+n%58)
		return []string{s}, s
	case "UI":
		s := origUIDRoot + strconv.Itoa(n)
		return []string{s}, s
	case "DS":
		s := fmt.Sprintf("%d.25", n)
		return []string{s}, s
	case "IS":
		s := strconv.Itoa(5000 + n)
		return []string{s}, s
	case "AS":
		return []string{"042Y"}, "042Y"
	case "US", "SS", "UL", "SL":
		return []int{5000 + n}, strconv.Itoa(5000 + n)
	case "FL", "FD":
		return []float64{float64(n) + 0.5}, strconv.FormatFloat(float64(n)+0.5, 'f', -1, 64)
	case "OB", "OW", "UN":
		s := fmt.Sprintf("ORIG%06d", n) // even length
		return []byte(s), s
	default: // AE CS LO LT SH ST UC UT: within 16 characters
		s := fmt.Sprintf("ORIG%d", n)
		return []string{s}, s
	}
}

// origValue is the top-level original value of row r as dump.py shows it.
func origValue(r Rule) string {
	_, s := original(vrOf(r.Tag), rowIndex(r.Tag), 0)
	return s
}

func rowIndex(t tag.Tag) int {
	for i, r := range profileTable {
		if r.Tag == t {
			return i
		}
	}
	panic("not a row")
}

// everyAttribute builds a CT instance that carries every single-tag row of
// Table E.1-1 with a distinctive value, every sequence with one item that
// nests table attributes, a private block, a curve and an overlay group.
// The returned map holds every original value per tag (top level and nested).
func everyAttribute(t testing.TB) ([]byte, map[tag.Tag][]string) {
	t.Helper()
	origs := map[tag.Tag][]string{}
	var els []*dicom.Element
	add := func(e *dicom.Element, shown string) {
		els = append(els, e)
		origs[e.Tag] = append(origs[e.Tag], shown)
	}
	nestedItem := func(i int) []*dicom.Element {
		var it []*dicom.Element
		for _, nt := range []tag.Tag{tag.InstitutionName, tag.ReferencedSOPInstanceUID, tag.PatientName, tag.StudyDate} {
			v, shown := original(vrOf(nt), rowIndex(nt), 1+i)
			it = append(it, elem(nt, vrOf(nt), v))
			origs[nt] = append(origs[nt], shown)
		}
		it = append(it, elem(tag.CodeValue, "SH", []string{fmt.Sprintf("KEEP%d", i)}))
		return it
	}
	for i, r := range profileTable {
		vr := vrOf(r.Tag)
		switch {
		case r.Tag.Group == tag.MetadataGroup: // carried by the file meta below
			continue
		case vr == "SQ":
			els = append(els, elem(r.Tag, "SQ", [][]*dicom.Element{nestedItem(i)}))
		default:
			v, shown := original(vr, i, 0)
			add(elem(r.Tag, vr, v), shown)
		}
	}
	sop := origValue(profileTable[rowIndex(tag.SOPInstanceUID)])
	origs[tag.MediaStorageSOPInstanceUID] = []string{sop}
	origs[tag.InstanceCreationDate] = []string{instanceCreationDate}
	els = append(els,
		elem(tag.SOPClassUID, "UI", []string{ctImageStorage}),
		elem(tag.Modality, "CS", []string{"CT"}),
		elem(tag.BurnedInAnnotation, "CS", []string{"NO"}),
		elem(tag.Manufacturer, "LO", []string{"KEEPMANUFACTURER"}),
		elem(tag.InstanceCreationDate, "DA", []string{instanceCreationDate}),
		// Private block, curve and overlay: removed whatever their values.
		elem(tag.Tag{Group: 0x0009, Element: 0x0010}, "LO", []string{"ORIGPRIVATECREATOR"}),
		elem(tag.Tag{Group: 0x0009, Element: 0x1001}, "LO", []string{"ORIGPRIVATE"}),
		elem(tag.Tag{Group: 0x5000, Element: 0x0005}, "US", []int{1}),
		elem(tag.Tag{Group: 0x6000, Element: 0x0010}, "US", []int{8}),
		elem(tag.Tag{Group: 0x6000, Element: 0x3000}, "OW", []byte("ORIGOVERLAY!")),
		elem(tag.Tag{Group: 0x6000, Element: 0x4000}, "LT", []string{"ORIGOVERLAYCOMMENT"}),
	)
	return part10(t, ctImageStorage, sop, els), origs
}

// part10 encodes els in explicit VR little endian behind a file meta.
func part10(t testing.TB, sopClass, sop string, els []*dicom.Element) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := dcm.WriteFileMeta(&buf, dcm.FileMeta{MediaStorageSOPClassUID: sopClass, MediaStorageSOPInstanceUID: sop,
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian, SourceApplicationEntityTitle: "ORIGAE"}); err != nil {
		t.Fatal(err)
	}
	meta, err := dicom.Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := dicom.Dataset{Elements: append(meta.Elements, els...)}
	sortTags(ds.Elements)
	var out bytes.Buffer
	if err := dicom.Write(&out, ds, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func sortTags(els []*dicom.Element) {
	for i := 1; i < len(els); i++ {
		for j := i; j > 0 && els[j].Tag.Uint32() < els[j-1].Tag.Uint32(); j-- {
			els[j], els[j-1] = els[j-1], els[j]
		}
	}
}

// dumped is one element as dump.py renders it.
type dumped struct {
	Path, Tag, VR, Value string
}

func (d dumped) tag() tag.Tag {
	v, err := strconv.ParseUint(d.Tag, 16, 32)
	if err != nil {
		panic(err)
	}
	return tag.Tag{Group: uint16(v >> 16), Element: uint16(v)}
}

func (d dumped) depth() int { return strings.Count(d.Path, "/") / 2 }

// pydicomDump reads files with pydicom (testdata/dump.py).
func pydicomDump(t *testing.T, files ...string) map[string][]dumped {
	t.Helper()
	peertest.Require(t, "pydicom")
	script, err := filepath.Abs("testdata/dump.py")
	if err != nil {
		t.Fatal(err)
	}
	// The system interpreter: it sees Debian's python3-pydicom, which a
	// pyenv or venv python3 earlier in PATH does not.
	cmd := exec.Command(peertest.HL7Python, append([]string{script}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dump.py: %v\n%s", err, stderr.String())
	}
	var res map[string][]dumped
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func openMap(t *testing.T, dir string) *Map {
	t.Helper()
	m, err := OpenMap(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newDeid(t *testing.T, opt Options, m *Map) *Deidentifier {
	t.Helper()
	d, err := New(opt, m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func deidBytes(t *testing.T, d *Deidentifier, in []byte) ([]byte, Record) {
	t.Helper()
	var out bytes.Buffer
	rec, err := d.File(bytes.NewReader(in), int64(len(in)), &out)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), rec
}
