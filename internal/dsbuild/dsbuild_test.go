package dsbuild

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// tagsOf lists the tags of els and, indented by one "." per level, those
// of their items, in the order they are.
func tagsOf(els []*dicom.Element, indent string) []string {
	var out []string
	for _, e := range els {
		out = append(out, indent+tag.DebugString(e.Tag))
		if e.Value.ValueType() == dicom.Sequences {
			for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
				out = append(out, tagsOf(it.GetValue().([]*dicom.Element), indent+".")...)
			}
		}
	}
	return out
}

// TestEncode: whatever the order of the additions, the file holds the
// data set in ascending tag order at every level, after the file meta,
// and reads back with the values given.
func TestEncode(t *testing.T) {
	b := &Builder{}
	b.Str(tag.SeriesInstanceUID, "1.2.3.2")
	item := &Builder{}
	item.Str(tag.ReferencedSOPInstanceUID, "1.2.3.4")
	item.Str(tag.ReferencedSOPClassUID, "1.2.840.10008.5.1.4.1.1.2")
	b.Seq(tag.ReferencedImageSequence, item, CodeItem("51185008", "SCT", "Chest"))
	b.Ints(tag.Rows, 512)
	b.Str(tag.PatientName, "PHANTOM^TEST")
	b.Floats(tag.FloatingPointValue, 0.25)
	b.Seq(tag.AcquisitionContextSequence)
	b.FileMeta("1.2.840.10008.5.1.4.1.1.2", "1.2.3.1", "1.2.3.9", "TEST_1")
	b.Str(tag.SOPInstanceUID, "1.2.3.1")
	data, err := Encode(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data[128:132], []byte("DICM")) {
		t.Fatal("no Part 10 header")
	}
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"(0002,0000)[FileMetaInformationGroupLength]", "(0002,0001)[FileMetaInformationVersion]",
		"(0002,0002)[MediaStorageSOPClassUID]", "(0002,0003)[MediaStorageSOPInstanceUID]",
		"(0002,0010)[TransferSyntaxUID]", "(0002,0012)[ImplementationClassUID]", "(0002,0013)[ImplementationVersionName]",
		"(0008,0018)[SOPInstanceUID]",
		"(0008,1140)[ReferencedImageSequence]",
		".(0008,1150)[ReferencedSOPClassUID]", ".(0008,1155)[ReferencedSOPInstanceUID]",
		".(0008,0100)[CodeValue]", ".(0008,0102)[CodingSchemeDesignator]", ".(0008,0104)[CodeMeaning]",
		"(0010,0010)[PatientName]", "(0020,000e)[SeriesInstanceUID]", "(0028,0010)[Rows]",
		"(0040,0555)[AcquisitionContextSequence]", "(0040,a161)[FloatingPointValue]",
	}
	if d := cmp.Diff(want, tagsOf(ds.Elements, "")); d != "" {
		t.Errorf("elements (-want +got):\n%s", d)
	}
	for tg, want := range map[tag.Tag]any{
		tag.TransferSyntaxUID: []string{explicitVRLittleEndian}, tag.PatientName: []string{"PHANTOM^TEST"},
		tag.Rows: []int{512}, tag.FloatingPointValue: []float64{0.25},
	} {
		e, err := ds.FindElementByTag(tg)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, e.Value.GetValue()); d != "" {
			t.Errorf("%s (-want +got):\n%s", tag.DebugString(tg), d)
		}
	}
}

// TestEncodeDuplicate: a tag given twice, at the top or in an item, is an
// error and not a file dciodvfy would reject.
func TestEncodeDuplicate(t *testing.T) {
	top := &Builder{}
	top.Str(tag.PatientID, "1")
	top.Str(tag.PatientID, "2")
	nested := &Builder{}
	it := CodeItem("1", "SCT", "x")
	it.Str(tag.CodeValue, "2")
	nested.Seq(tag.ConceptNameCodeSequence, it)
	for name, b := range map[string]*Builder{"top": top, "item": nested} {
		if _, err := Encode(b, 0); !errors.Is(err, ErrDuplicate) {
			t.Errorf("%s: %v, want ErrDuplicate", name, err)
		}
	}
}

// TestFirstError: the first failed addition is kept, in an item too, and
// returned by Encode; later additions change nothing.
func TestFirstError(t *testing.T) {
	bad := tag.Tag{Group: 0x0009, Element: 0x0010} // private: no dictionary VR
	b := &Builder{}
	b.Str(bad, "x")
	first := b.err
	b.Str(tag.PatientID, "1")
	b.Element(&dicom.Element{Tag: tag.PatientName})
	if first == nil || b.err != first || len(b.els) != 0 {
		t.Fatalf("error %v then %v, %d elements", first, b.err, len(b.els))
	}
	if _, err := Encode(b, 0); err != first {
		t.Errorf("Encode: %v, want %v", err, first)
	}
	item := &Builder{}
	item.Str(bad, "x")
	parent := &Builder{}
	parent.Seq(tag.ReferencedImageSequence, item)
	if _, err := Encode(parent, 0); err == nil || err != item.err {
		t.Errorf("Encode: %v, want the item's error %v", err, item.err)
	}
}

func TestDS(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", -0.00001: "0", 1.23456: "1.2346", 1800.0 / 1650: "1.0909", 120: "120", -20.25: "-20.25", 230.4: "230.4",
	} {
		if got := DS(v); got != want {
			t.Errorf("DS(%v) = %q, want %q", v, got, want)
		}
	}
	if d := cmp.Diff([]string{"-114.975", "0.45", "-40"}, DSList(-114.975, 0.45, -40)); d != "" {
		t.Errorf("DSList (-want +got):\n%s", d)
	}
}
