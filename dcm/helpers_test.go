package dcm

import (
	"encoding/binary"
	"os"
)

// testEnc builds elements for tests in one of the three encodings.
type testEnc struct{ explicit, big bool }

var (
	tImplicit = testEnc{}
	tExplicit = testEnc{explicit: true}
	tBig      = testEnc{explicit: true, big: true}
)

func (e testEnc) u16(b []byte, v uint16) []byte {
	if e.big {
		return binary.BigEndian.AppendUint16(b, v)
	}
	return binary.LittleEndian.AppendUint16(b, v)
}

func (e testEnc) u32(b []byte, v uint32) []byte {
	if e.big {
		return binary.BigEndian.AppendUint32(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, v)
}

// hdr encodes an element header with value length n.
func (e testEnc) hdr(t Tag, vr string, n uint32) []byte {
	b := e.u16(nil, t.Group())
	b = e.u16(b, t.Element())
	if !e.explicit || t.Group() == 0xFFFE {
		return e.u32(b, n)
	}
	b = append(b, vr...)
	if isShortVR(uint16(vr[0])<<8 | uint16(vr[1])) {
		return e.u16(b, uint16(n))
	}
	b = append(b, 0, 0)
	return e.u32(b, n)
}

// el encodes a whole element; string values are padded to even length.
func (e testEnc) el(t Tag, vr string, v []byte) []byte {
	return append(e.hdr(t, vr, uint32(len(v))), v...)
}

func (e testEnc) str(t Tag, vr, s string) []byte {
	if len(s)%2 == 1 {
		if vr == "UI" {
			s += "\x00"
		} else {
			s += " "
		}
	}
	return e.el(t, vr, []byte(s))
}

func (e testEnc) us(t Tag, vs ...uint16) []byte {
	var v []byte
	for _, x := range vs {
		v = e.u16(v, x)
	}
	return e.el(t, "US", v)
}

// seq encodes a sequence of undefined length holding the items.
func (e testEnc) seq(t Tag, items ...[]byte) []byte {
	b := e.hdr(t, "SQ", undefinedLength)
	for _, it := range items {
		b = append(b, it...)
	}
	return append(b, e.hdr(SequenceDelimitationItem, "", 0)...)
}

// seqDef encodes a sequence of defined length.
func (e testEnc) seqDef(t Tag, items ...[]byte) []byte {
	var body []byte
	for _, it := range items {
		body = append(body, it...)
	}
	return append(e.hdr(t, "SQ", uint32(len(body))), body...)
}

// item encodes an item of undefined length.
func (e testEnc) item(elems ...[]byte) []byte {
	b := e.hdr(Item, "", undefinedLength)
	for _, el := range elems {
		b = append(b, el...)
	}
	return append(b, e.hdr(ItemDelimitationItem, "", 0)...)
}

// itemDef encodes an item of defined length.
func (e testEnc) itemDef(elems ...[]byte) []byte {
	var body []byte
	for _, el := range elems {
		body = append(body, el...)
	}
	return append(e.hdr(Item, "", uint32(len(body))), body...)
}

// encapsulated encodes pixel data of undefined length holding fragments.
func (e testEnc) encapsulated(frags ...[]byte) []byte {
	b := e.hdr(PixelData, "OB", undefinedLength)
	for _, f := range frags {
		b = append(b, e.hdr(Item, "", uint32(len(f)))...)
		b = append(b, f...)
	}
	return append(b, e.hdr(SequenceDelimitationItem, "", 0)...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// basicDataSet is a small image data set in encoding e.
func basicDataSet(e testEnc) []byte {
	return cat(
		e.str(SpecificCharacterSet, "CS", "ISO_IR 100"),
		e.str(SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.2"),
		e.str(SOPInstanceUID, "UI", "1.2.3.4.5"),
		e.str(Modality, "CS", "CT"),
		e.str(PatientName, "PN", "Doe^John"),
		e.str(PatientID, "LO", "PID1"),
		e.str(StudyInstanceUID, "UI", "1.2.3"),
		e.str(SeriesInstanceUID, "UI", "1.2.3.4"),
		e.str(InstanceNumber, "IS", "7"),
		e.us(Rows, 4),
		e.us(Columns, 2),
		e.el(PixelData, "OW", make([]byte, 16)),
	)
}

var basicWant = []Tag{SOPClassUID, SOPInstanceUID, Modality, PatientID, StudyInstanceUID, InstanceNumber, Rows, Columns}

var basicAttrs = Attributes{
	SOPClassUID:      "1.2.840.10008.5.1.4.1.1.2",
	SOPInstanceUID:   "1.2.3.4.5",
	Modality:         "CT",
	PatientID:        "PID1",
	StudyInstanceUID: "1.2.3",
	InstanceNumber:   "7",
	Rows:             "4",
	Columns:          "2",
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
