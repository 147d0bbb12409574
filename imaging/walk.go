package imaging

import (
	"encoding/binary"
	"fmt"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// maxNesting bounds sequence nesting (each level costs the parser stack).
const maxNesting = 64

// walker checks the element structure of a data set before
// suyashkumar/dicom parses it. That library allocates each value with
// make([]byte, vl) before reading it, so a 1 KB file declaring a 4 GiB
// element costs 4 GiB. The walker follows the same grammar (PS3.5 7.1:
// explicit or implicit VR, defined or undefined lengths, items and
// delimiters, and the library's choice of VR in implicit VR, via its own
// dictionary) and rejects any length that overruns its enclosing bytes;
// on the way it records where the top-level element want lies.
type walker struct {
	b        []byte
	bo       binary.ByteOrder
	implicit bool
	want     tag.Tag
	found    *elemRange
}

// longLengthVRs have a reserved 2 bytes and a 32-bit length in explicit
// VR (PS3.5 Table 7.1-1), as the library reads them.
var longLengthVRs = map[string]bool{"NA": true, "OB": true, "OD": true, "OF": true, "OL": true,
	"OW": true, "SQ": true, "UN": true, "UC": true, "UR": true, "UT": true}

// elements walks elements in b[off:end]; with a non-zero delim it stops
// after that delimiter and fails if it is missing. It returns the offset
// after what it consumed.
func (w *walker) elements(off, end, depth int, delim tag.Tag) (int, error) {
	if depth > maxNesting {
		return 0, fmt.Errorf("%w: sequences nested deeper than %d", ErrCorrupt, maxNesting)
	}
	for off < end {
		start := off
		t, vr, vl, hdr, err := w.header(off, end, w.implicit || t0(w, off, end) == tag.Item)
		if err != nil {
			return 0, err
		}
		off += hdr
		if delim != (tag.Tag{}) && t == delim {
			// The library reads a delimiter's value like any other.
			if vl == undefinedLength || int64(vl) > int64(end-off) {
				return 0, fmt.Errorf("%w: delimiter %v length %d", ErrCorrupt, t, vl)
			}
			return off + int(vl), nil
		}
		if depth == 0 && t == w.want {
			w.found = &elemRange{start: start, hdr: hdr, vl: vl}
		}
		kind := tag.GetVRKind(t, vr)
		switch {
		case vl == undefinedLength && (kind == tag.VRSequence || kind == tag.VRUnknown):
			off, err = w.elements(off, end, depth+1, tag.SequenceDelimitationItem)
		case vl == undefinedLength && kind == tag.VRItem:
			off, err = w.elements(off, end, depth+1, tag.ItemDelimitationItem)
		case vl == undefinedLength && (kind == tag.VRPixelData || kind == tag.VRBytes):
			off, err = w.rawItems(off, end)
		case vl == undefinedLength:
			return 0, fmt.Errorf("%w: element %v (VR %q) has undefined length", ErrCorrupt, t, vr)
		case int64(vl) > int64(end-off):
			return 0, fmt.Errorf("%w: element %v length %d overruns the %d bytes left", ErrCorrupt, t, vl, end-off)
		case kind == tag.VRSequence || kind == tag.VRItem:
			_, err = w.elements(off, off+int(vl), depth+1, tag.Tag{})
			off += int(vl)
		default:
			off += int(vl)
		}
		if err != nil {
			return 0, err
		}
	}
	if delim != (tag.Tag{}) {
		return 0, fmt.Errorf("%w: missing delimiter %v", ErrCorrupt, delim)
	}
	return off, nil
}

// t0 is the tag at off, or the zero tag when fewer than 4 bytes are left.
func t0(w *walker, off, end int) tag.Tag {
	if end-off < 4 {
		return tag.Tag{}
	}
	return tag.Tag{Group: w.bo.Uint16(w.b[off:]), Element: w.bo.Uint16(w.b[off+2:])}
}

// header reads an element header at off: tag, VR, value length and header
// size. Items have no VR (PS3.5 7.5), so the library reads them, and all
// of encapsulated Pixel Data, as implicit; delimiters it reads in the data
// set's VR form, and so does header.
func (w *walker) header(off, end int, implicit bool) (t tag.Tag, vr string, vl uint32, hdr int, err error) {
	if end-off < 8 {
		return t, "", 0, 0, fmt.Errorf("%w: truncated element header at offset %d", ErrCorrupt, off)
	}
	b := w.b[off:end]
	t = tag.Tag{Group: w.bo.Uint16(b), Element: w.bo.Uint16(b[2:])}
	if implicit {
		return t, implicitVR(t), w.bo.Uint32(b[4:]), 8, nil
	}
	vr = string(b[4:6])
	if !longLengthVRs[vr] {
		return t, vr, uint32(w.bo.Uint16(b[6:])), 8, nil
	}
	if len(b) < 12 {
		return t, "", 0, 0, fmt.Errorf("%w: truncated element header at offset %d", ErrCorrupt, off)
	}
	return t, vr, w.bo.Uint32(b[8:]), 12, nil
}

// implicitVR is the VR the library assumes in implicit VR: the
// dictionary's first, OW for Pixel Data and Overlay Data (PS3.5 8.1.2,
// 8.2), UN for unknown tags.
func implicitVR(t tag.Tag) string {
	if t == tag.PixelData || t == tag.OverlayData {
		return "OW"
	}
	if e, err := tag.Find(t); err == nil && len(e.VRs) > 0 {
		return e.VRs[0]
	}
	return "UN"
}

// rawItems walks defined-length items up to a Sequence Delimitation Item
// (encapsulated pixel data, PS3.5 A.4).
func (w *walker) rawItems(off, end int) (int, error) {
	for {
		t, _, vl, hdr, err := w.header(off, end, true)
		if err != nil {
			return 0, err
		}
		off += hdr
		switch {
		case t == tag.SequenceDelimitationItem:
			return off, nil
		case t != tag.Item || vl == undefinedLength:
			return 0, fmt.Errorf("%w: bad item %v (length %d) in encapsulated value", ErrCorrupt, t, vl)
		case int64(vl) > int64(end-off):
			return 0, fmt.Errorf("%w: item length %d overruns the %d bytes left", ErrCorrupt, vl, end-off)
		}
		off += int(vl)
	}
}
