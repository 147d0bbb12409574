package dsbuild

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrDuplicate is returned by Encode when a data set or an item holds a
// tag twice (PS3.5 7.1: each tag occurs at most once).
var ErrDuplicate = errors.New("dsbuild: tag given twice")

// explicitVRLittleEndian is the transfer syntax Encode writes (PS3.5 A.2).
const explicitVRLittleEndian = "1.2.840.10008.1.2.1"

// Builder collects the elements of a data set (or of a sequence item) and
// keeps the first error. The zero value is an empty data set.
type Builder struct {
	els []*dicom.Element
	err error
}

// Add adds the element t with the value v, of a type dicom.NewElement takes
// ([]string, []int, []float64, []byte, [][]*dicom.Element, PixelDataInfo).
func (b *Builder) Add(t tag.Tag, v any) {
	if b.err != nil {
		return
	}
	e, err := dicom.NewElement(t, v)
	if err != nil {
		b.err = fmt.Errorf("dsbuild: element %s: %w", tag.DebugString(t), err)
		return
	}
	b.els = append(b.els, e)
}

// Str adds a string element (each v one value; none: an empty value).
func (b *Builder) Str(t tag.Tag, v ...string) { b.Add(t, v) }

// Ints adds an integer element (US, SS, UL, SL).
func (b *Builder) Ints(t tag.Tag, v ...int) { b.Add(t, v) }

// Floats adds a binary floating point element (FL, FD).
func (b *Builder) Floats(t tag.Tag, v ...float64) { b.Add(t, v) }

// Seq adds a sequence of the items (none: an empty sequence).
func (b *Builder) Seq(t tag.Tag, items ...*Builder) {
	vals := make([][]*dicom.Element, 0, len(items))
	for _, it := range items {
		if it.err != nil && b.err == nil {
			b.err = it.err
		}
		vals = append(vals, it.els)
	}
	b.Add(t, vals)
}

// Element adds e as it is, e.g. an element parsed from another data set.
// Encode sorts the items of a sequence in place, so e must not be shared
// with a data set that is written concurrently.
func (b *Builder) Element(e *dicom.Element) {
	if b.err == nil {
		b.els = append(b.els, e)
	}
}

// FileMeta adds the File Meta Information group (PS3.10 Table 7.1-1) of a
// file in explicit VR little endian, the transfer syntax Encode writes.
// implClass and implVersion identify the writer (PS3.7 D.3.3.2).
func (b *Builder) FileMeta(sopClass, sopInstance, implClass, implVersion string) {
	b.Add(tag.FileMetaInformationVersion, []byte{0, 1})
	b.Str(tag.MediaStorageSOPClassUID, sopClass)
	b.Str(tag.MediaStorageSOPInstanceUID, sopInstance)
	b.Str(tag.TransferSyntaxUID, explicitVRLittleEndian)
	b.Str(tag.ImplementationClassUID, implClass)
	b.Str(tag.ImplementationVersionName, implVersion)
}

// CodeItem is a code sequence item (PS3.3 Table 8.8-1a).
func CodeItem(value, scheme, meaning string) *Builder {
	it := &Builder{}
	it.Str(tag.CodeValue, value)
	it.Str(tag.CodingSchemeDesignator, scheme)
	it.Str(tag.CodeMeaning, meaning)
	return it
}

// Encode writes b as a Part 10 file in explicit VR little endian; b should
// hold its File Meta Information (see FileMeta). suyashkumar/dicom writes
// elements in the order given, so they are sorted by tag first, items
// included (PS3.5 7.1: ascending order). sizeHint is the expected size.
func Encode(b *Builder, sizeHint int) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if err := sortElements(b.els); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	if err := dicom.Write(&buf, dicom.Dataset{Elements: b.els}); err != nil {
		return nil, fmt.Errorf("dsbuild: write: %w", err)
	}
	return buf.Bytes(), nil
}

func sortElements(els []*dicom.Element) error {
	slices.SortFunc(els, func(a, b *dicom.Element) int {
		return cmp.Compare(a.Tag.Uint32(), b.Tag.Uint32())
	})
	for i, e := range els {
		if i > 0 && els[i-1].Tag == e.Tag {
			return fmt.Errorf("%w: %s", ErrDuplicate, tag.DebugString(e.Tag))
		}
		if e.Value.ValueType() != dicom.Sequences {
			continue
		}
		for _, item := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
			if err := sortElements(item.GetValue().([]*dicom.Element)); err != nil {
				return err
			}
		}
	}
	return nil
}

// DS formats a decimal string (PS3.5 6.2 DS) to at most 4 decimals.
func DS(v float64) string {
	r := math.Round(v*1e4) / 1e4
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// DSList formats each value as DS does.
func DSList(v ...float64) []string {
	out := make([]string, len(v))
	for i, f := range v {
		out[i] = DS(f)
	}
	return out
}
