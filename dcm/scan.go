package dcm

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// Attributes holds the selected top-level attributes of a dataset as strings
// (multi-valued joined with `\`, trailing padding removed).
type Attributes map[Tag]string

// undefinedLength is the value length 0xFFFFFFFF of PS3.5 7.1.1.
const undefinedLength = 0xFFFFFFFF

// encoding is the element encoding in force: PS3.5 7.1.2 (explicit VR) or
// 7.1.3 (implicit VR), little or big endian (PS3.5 7.3).
type encoding struct {
	explicit bool
	big      bool
}

func (e encoding) uint16(b []byte) uint16 {
	if e.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (e encoding) uint32(b []byte) uint32 {
	if e.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (e encoding) uint64(b []byte) uint64 {
	if e.big {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}

// Value representations, as their two characters in a uint16.
const (
	vrAE = 'A'<<8 | 'E'
	vrAT = 'A'<<8 | 'T'
	vrFD = 'F'<<8 | 'D'
	vrFL = 'F'<<8 | 'L'
	vrOB = 'O'<<8 | 'B'
	vrOD = 'O'<<8 | 'D'
	vrOF = 'O'<<8 | 'F'
	vrOL = 'O'<<8 | 'L'
	vrOV = 'O'<<8 | 'V'
	vrOW = 'O'<<8 | 'W'
	vrSL = 'S'<<8 | 'L'
	vrSQ = 'S'<<8 | 'Q'
	vrSS = 'S'<<8 | 'S'
	vrSV = 'S'<<8 | 'V'
	vrUC = 'U'<<8 | 'C'
	vrUL = 'U'<<8 | 'L'
	vrUN = 'U'<<8 | 'N'
	vrUR = 'U'<<8 | 'R'
	vrUS = 'U'<<8 | 'S'
	vrUT = 'U'<<8 | 'T'
	vrUV = 'U'<<8 | 'V'
)

// isVR reports whether a, b can be an explicit VR. Any two upper-case
// letters are accepted so that VRs added after this code still parse.
func isVR(a, b byte) bool {
	return a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z'
}

// isLongVR reports whether vr has the reserved field and 32-bit length of
// PS3.5 Table 7.1-1. Unknown VRs are treated as long: every VR added since
// 2007 (UC, UR, UT, OD, OL, OV, SV, UV) uses that form.
func isLongVR(vr uint16) bool {
	return !isShortVR(vr)
}

func isKnownLongVR(vr uint16) bool {
	switch vr {
	case vrOB, vrOD, vrOF, vrOL, vrOV, vrOW, vrSQ, vrUC, vrUN, vrUR, vrUT, vrSV, vrUV:
		return true
	}
	return false
}

func isShortVR(vr uint16) bool {
	switch vr {
	case 'A'<<8 | 'E', 'A'<<8 | 'S', vrAT, 'C'<<8 | 'S', 'D'<<8 | 'A', 'D'<<8 | 'S', 'D'<<8 | 'T',
		vrFL, vrFD, 'I'<<8 | 'S', 'L'<<8 | 'O', 'L'<<8 | 'T', 'P'<<8 | 'N', 'S'<<8 | 'H',
		vrSL, vrSS, 'S'<<8 | 'T', 'T'<<8 | 'M', 'U'<<8 | 'I', vrUL, vrUS:
		return true
	}
	return false
}

// implicitVR gives the binary VR of the wanted tags that are not strings,
// for implicit VR and UN values (PS3.6 Table 6-1). Other tags are strings.
func implicitVR(t Tag) uint16 {
	if t.Element() == 0 {
		return vrUL // group length, PS3.5 7.2
	}
	switch t {
	case 0x00280002, 0x00280006, Rows, Columns, 0x00280100, 0x00280101, 0x00280102, 0x00280103:
		return vrUS // samples per pixel .. pixel representation
	}
	return 0
}

// trimPadding removes trailing spaces and NULs (PS3.5 6.2: values are
// padded to even length with a space, UIDs with NUL).
func trimPadding(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}

// ScanDataset walks a whole dataset encoded in ts (inflating when Deflated),
// validating its structure up to the end, and returns the values of the
// top-level elements listed in want. It never holds a value larger than needed
// for want in memory (bulk values are skipped). Returns an error wrapping
// ErrMalformed on any structural problem.
//
// The walk follows PS3.5 Section 7: explicit VR (7.1.2) with 16- or 32-bit
// lengths, implicit VR (7.1.3), either byte order, nested sequences and
// items of defined or undefined length (7.5), encapsulated pixel data
// (A.4) and UN of undefined length, whose content is implicit VR little
// endian (6.2.2). In implicit VR an element of undefined length is a
// sequence and one of defined length is opaque. The data set ends at EOF on
// an element boundary; data set trailing padding (FFFC,FFFC) is an ordinary
// element. Rejected, as ErrMalformed: EOF inside an element, an element or
// item overrunning its container, an item or delimiter outside a sequence,
// undefined length on an explicit VR element other than SQ, UN or pixel
// data, nesting deeper than MaxDepth. Odd value lengths are accepted.
//
// Values of wanted tags are returned as strings with trailing spaces and
// NULs removed (character sets are not decoded; see SpecificCharacterSet);
// US, SS, UL, SL, FL, FD, SV, UV and AT values are rendered in decimal (AT
// as "(gggg,eeee)"), multiple values joined by `\`. Wanted elements that
// are sequences, have undefined length, are bulk binary (OB, OW, OD, OF,
// OL, OV) or are longer than MaxValueLength are skipped and absent from the
// result. Read errors other than EOF are returned as they are.
//
// On error the attributes found before it are returned with it.
//
// ScanDataset reads r through a 64 KiB bufio.Reader (or r itself when it
// is a bufio.Reader at least that large) and allocates nothing per element
// beyond the wanted values. When r is an io.ReadSeeker that knows its size
// (an io.SectionReader, say) and the data set is not deflated, values too
// large for the buffer are seeked over rather than read. It allocates that buffer on every call; a
// Scanner keeps it between calls.
func ScanDataset(r io.Reader, ts TransferSyntax, want []Tag) (Attributes, error) {
	var sc Scanner
	return sc.Scan(r, ts, want)
}

// A Scanner runs ScanDataset with buffers it keeps from one call to the
// next, which saves the 64 KiB (and, for deflated data sets, the inflater)
// allocation per instance on a hot path. The zero value is ready to use. A
// Scanner is not safe for concurrent use; keep one per goroutine.
type Scanner struct {
	br  *bufio.Reader // over the caller's reader
	zr  io.ReadCloser // inflater, reset through flate.Resetter
	zbr *bufio.Reader // over the inflated stream
}

// Scan is ScanDataset using sc's buffers. It keeps no reference to r.
func (sc *Scanner) Scan(r io.Reader, ts TransferSyntax, want []Tag) (Attributes, error) {
	var src sizedSeeker
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < scanBufferSize {
		if sc.br == nil {
			sc.br = bufio.NewReaderSize(r, scanBufferSize)
		} else {
			sc.br.Reset(r)
		}
		br = sc.br
		defer sc.br.Reset(nil)
		src, _ = r.(sizedSeeker)
	}
	if ts.Deflated {
		// PS3.5 A.5: the data set after the meta is a raw RFC 1951 stream.
		if sc.zr == nil {
			sc.zr = flate.NewReader(br)
		} else if err := sc.zr.(flate.Resetter).Reset(br, nil); err != nil {
			return nil, err
		}
		defer sc.zr.(flate.Resetter).Reset(eofReader{}, nil)
		if sc.zbr == nil {
			sc.zbr = bufio.NewReaderSize(sc.zr, scanBufferSize)
		} else {
			sc.zbr.Reset(sc.zr)
		}
		defer sc.zbr.Reset(nil)
		br = sc.zbr
		src = nil
	}
	s := scanner{
		br:    br,
		src:   src,
		want:  want,
		attrs: make(Attributes, len(want)),
	}
	if !slices.IsSorted(want) {
		s.want = slices.Clone(want)
		slices.Sort(s.want)
	}
	enc := s.checkEncoding(encoding{explicit: ts.Explicit, big: ts.BigEndian})
	if err := s.dataset(enc, -1, false, 0); err != nil {
		return s.attrs, err
	}
	return s.attrs, nil
}

// checkEncoding looks at the first element and corrects the VR encoding
// when it contradicts the transfer syntax, as pydicom does: some writers
// label an implicit VR data set explicit in the meta and the reverse. Only
// a little endian first element with a group below 0x0100 is judged.
func (s *scanner) checkEncoding(enc encoding) encoding {
	b, err := s.br.Peek(8)
	if err != nil || enc.big || b[1] != 0 {
		return enc
	}
	vr := uint16(b[4])<<8 | uint16(b[5])
	switch {
	case enc.explicit && !isVR(b[4], b[5]):
		enc.explicit = false
	case !enc.explicit && (isShortVR(vr) || isKnownLongVR(vr)):
		enc.explicit = true
	}
	return enc
}

// eofReader is an empty flate.Reader, to let go of the caller's reader
// without the allocation flate would make to wrap nil.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
func (eofReader) ReadByte() (byte, error)  { return 0, io.EOF }

// sizedSeeker is a source the scanner can skip values of by seeking.
type sizedSeeker interface {
	io.ReadSeeker
	Size() int64
}

type scanner struct {
	br    *bufio.Reader
	src   sizedSeeker // br's source when values can be seeked over; else nil
	pos   int64       // bytes of the (inflated) data set consumed
	want  []Tag       // sorted
	attrs Attributes
}

// malformed reports a structural error at the current offset.
func (s *scanner) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), s.pos)
}

// readErr converts a short read into ErrMalformed (truncation) and passes
// other read errors through.
func (s *scanner) readErr(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated %s at offset %d: %w", ErrMalformed, what, s.pos, io.ErrUnexpectedEOF)
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: deflate: %w", ErrMalformed, err)
	}
	return fmt.Errorf("dcm: reading data set: %w", err)
}

// peek returns the next n bytes without consuming them.
func (s *scanner) peek(n int, what string) ([]byte, error) {
	b, err := s.br.Peek(n)
	if err != nil {
		return nil, s.readErr(err, what)
	}
	return b, nil
}

func (s *scanner) discard(n int) {
	// Only called for bytes already peeked, which Discard cannot fail on.
	s.br.Discard(n)
	s.pos += int64(n)
}

// skip consumes n value bytes without holding them.
func (s *scanner) skip(n uint32) error {
	if s.src != nil && int64(n) > int64(s.br.Buffered()) {
		return s.seek(int64(n))
	}
	for n > 0 {
		chunk := min(n, 1<<30) // fits int on 32-bit platforms
		d, err := s.br.Discard(int(chunk))
		s.pos += int64(d)
		if err != nil {
			return s.readErr(err, "value")
		}
		n -= chunk
	}
	return nil
}

// seek skips n bytes, more than br holds, by seeking its source: what br
// holds is discarded, the rest seeked over, and br starts again there. A
// value running past the end of the source is truncated, as a read would
// find.
func (s *scanner) seek(n int64) error {
	b := int64(s.br.Buffered())
	cur, err := s.src.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("dcm: reading data set: %w", err)
	}
	if rest := s.src.Size() - cur; n-b > rest {
		s.br.Discard(int(b))
		s.pos += b + rest
		return s.readErr(io.ErrUnexpectedEOF, "value")
	}
	s.br.Discard(int(b))
	if _, err := s.src.Seek(n-b, io.SeekCurrent); err != nil {
		return fmt.Errorf("dcm: reading data set: %w", err)
	}
	s.br.Reset(s.src)
	s.pos += n
	return nil
}

// header is a decoded element or item header.
type header struct {
	tag    Tag
	vr     uint16 // 0 in implicit VR and for items and delimiters
	length uint32
}

// readHeader decodes the next element header (PS3.5 7.1.2, 7.1.3) or item
// header (7.5, always tag and 32-bit length). end, if not negative, is where
// the enclosing container ends. At a clean EOF it returns io.EOF.
func (s *scanner) readHeader(enc encoding, end int64) (header, error) {
	b, err := s.br.Peek(8)
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return header{}, io.EOF
		}
		return header{}, s.readErr(err, "element header")
	}
	h := header{tag: Tag(uint32(enc.uint16(b[0:]))<<16 | uint32(enc.uint16(b[2:])))}
	hl := 8
	switch {
	case h.tag.Group() == 0xFFFE || !enc.explicit:
		h.length = enc.uint32(b[4:])
	case !isVR(b[4], b[5]):
		return header{}, s.malformed("element %v has no valid VR", h.tag)
	default:
		h.vr = uint16(b[4])<<8 | uint16(b[5])
		if isShortVR(h.vr) {
			h.length = uint32(enc.uint16(b[6:]))
		} else {
			if b, err = s.peek(12, "element header"); err != nil {
				return header{}, err
			}
			h.length = enc.uint32(b[8:])
			hl = 12
		}
	}
	if end >= 0 && s.pos+int64(hl) > end {
		return header{}, s.malformed("element %v header overruns its container", h.tag)
	}
	s.discard(hl)
	if end >= 0 && h.length != undefinedLength && s.pos+int64(h.length) > end {
		return header{}, s.malformed("element %v length %d overruns its container", h.tag, h.length)
	}
	return h, nil
}

// dataset walks elements until end (when end >= 0), until an item
// delimitation item (when delimited), or until EOF (top level).
func (s *scanner) dataset(enc encoding, end int64, delimited bool, depth int) error {
	for {
		if end >= 0 && s.pos == end {
			return nil
		}
		h, err := s.readHeader(enc, end)
		if err == io.EOF {
			if depth == 0 && !delimited && end < 0 {
				return nil // PS3.10 7.2: the data set ends with the file
			}
			return s.readErr(io.ErrUnexpectedEOF, "item")
		}
		if err != nil {
			return err
		}
		if h.tag.Group() == 0xFFFE {
			switch {
			case h.tag == ItemDelimitationItem && delimited:
				if h.length != 0 {
					return s.malformed("item delimitation item with length %d", h.length)
				}
				return nil
			case h.tag == ItemDelimitationItem && end >= 0 && depth > 0 && h.length == 0:
				// Stray delimiter in a defined-length item: tolerated, as
				// DCMTK does, since it changes nothing.
				continue
			default:
				return s.malformed("%v outside a sequence", h.tag)
			}
		}
		if err := s.element(enc, h, depth); err != nil {
			return err
		}
	}
}

// element consumes the value of the element whose header is h.
func (s *scanner) element(enc encoding, h header, depth int) error {
	if h.length == undefinedLength {
		switch {
		case h.tag == PixelData && (h.vr == 0 || h.vr == vrOB || h.vr == vrOW || h.vr == vrUN):
			return s.fragments(enc, depth) // PS3.5 A.4
		case h.vr == vrUN:
			return s.sequence(encoding{}, -1, depth) // PS3.5 6.2.2: implicit VR LE inside
		case h.vr == vrSQ || h.vr == 0:
			return s.sequence(enc, -1, depth)
		default:
			return s.malformed("element %v with VR %s has undefined length", h.tag, vrString(h.vr))
		}
	}
	if h.vr == vrSQ {
		return s.sequence(enc, s.pos+int64(h.length), depth)
	}
	if depth == 0 && h.length <= MaxValueLength && s.wanted(h.tag) {
		return s.readValue(enc, h)
	}
	return s.skip(h.length)
}

func vrString(vr uint16) string { return string([]byte{byte(vr >> 8), byte(vr)}) }

func (s *scanner) wanted(t Tag) bool {
	w := s.want
	if len(w) == 0 || t < w[0] || t > w[len(w)-1] {
		return false
	}
	_, ok := slices.BinarySearch(w, t)
	return ok
}

// sequence walks the items of a sequence (PS3.5 7.5) until end (defined
// length) or the sequence delimitation item.
func (s *scanner) sequence(enc encoding, end int64, depth int) error {
	depth++
	if depth > MaxDepth {
		return s.malformed("sequences nested deeper than %d", MaxDepth)
	}
	for {
		if end >= 0 && s.pos == end {
			return nil
		}
		h, err := s.readHeader(itemEncoding(enc), end)
		if err == io.EOF {
			return s.readErr(io.ErrUnexpectedEOF, "sequence")
		}
		if err != nil {
			return err
		}
		switch h.tag {
		case Item:
			if h.length == undefinedLength {
				err = s.dataset(enc, -1, true, depth)
			} else {
				err = s.dataset(enc, s.pos+int64(h.length), false, depth)
			}
			if err != nil {
				return err
			}
		case SequenceDelimitationItem:
			if h.length != 0 {
				return s.malformed("sequence delimitation item with length %d", h.length)
			}
			if end < 0 {
				return nil
			}
			// Stray delimiter in a defined-length sequence: tolerated.
		default:
			return s.malformed("%v in a sequence where an item belongs", h.tag)
		}
	}
}

// itemEncoding is enc for reading item headers, which never carry a VR.
func itemEncoding(enc encoding) encoding {
	enc.explicit = false
	return enc
}

// fragments walks encapsulated pixel data (PS3.5 A.4): items of defined
// length up to the sequence delimitation item.
func (s *scanner) fragments(enc encoding, depth int) error {
	if depth+1 > MaxDepth {
		return s.malformed("sequences nested deeper than %d", MaxDepth)
	}
	for {
		h, err := s.readHeader(itemEncoding(enc), -1)
		if err == io.EOF {
			return s.readErr(io.ErrUnexpectedEOF, "pixel data fragments")
		}
		if err != nil {
			return err
		}
		switch {
		case h.tag == Item && h.length != undefinedLength:
			if err := s.skip(h.length); err != nil {
				return err
			}
		case h.tag == SequenceDelimitationItem:
			if h.length != 0 {
				return s.malformed("sequence delimitation item with length %d", h.length)
			}
			return nil
		default:
			return s.malformed("%v (length %d) among pixel data fragments", h.tag, h.length)
		}
	}
}

// readValue stores the value of a wanted top-level element.
func (s *scanner) readValue(enc encoding, h header) error {
	b, err := s.peek(int(h.length), "value")
	if err != nil {
		return err
	}
	vr := h.vr
	if vr == 0 || vr == vrUN {
		vr = implicitVR(h.tag)
		if h.vr == vrUN {
			enc.big = false // UN holds the implicit VR little endian encoding
		}
	}
	switch vr {
	case vrOB, vrOD, vrOF, vrOL, vrOV, vrOW, vrUN:
		// bulk binary: not indexable
	case vrUS, vrSS, vrUL, vrSL, vrFL, vrFD, vrSV, vrUV, vrAT:
		s.attrs[h.tag] = renderBinary(enc, vr, b)
	default:
		s.attrs[h.tag] = string(trimPadding(b))
	}
	s.discard(int(h.length))
	return nil
}

// renderBinary formats binary numbers in decimal, values separated by `\`.
// Trailing bytes that do not make a whole value are ignored.
func renderBinary(enc encoding, vr uint16, b []byte) string {
	size := 2
	switch vr {
	case vrUL, vrSL, vrFL, vrAT:
		size = 4
	case vrFD, vrSV, vrUV:
		size = 8
	}
	var buf [64]byte
	out := buf[:0]
	for i := 0; i+size <= len(b); i += size {
		if i > 0 {
			out = append(out, '\\')
		}
		v := b[i : i+size]
		switch vr {
		case vrUS:
			out = strconv.AppendUint(out, uint64(enc.uint16(v)), 10)
		case vrSS:
			out = strconv.AppendInt(out, int64(int16(enc.uint16(v))), 10)
		case vrUL:
			out = strconv.AppendUint(out, uint64(enc.uint32(v)), 10)
		case vrSL:
			out = strconv.AppendInt(out, int64(int32(enc.uint32(v))), 10)
		case vrFL:
			out = strconv.AppendFloat(out, float64(math.Float32frombits(enc.uint32(v))), 'g', -1, 32)
		case vrFD:
			out = strconv.AppendFloat(out, math.Float64frombits(enc.uint64(v)), 'g', -1, 64)
		case vrSV:
			out = strconv.AppendInt(out, int64(enc.uint64(v)), 10)
		case vrUV:
			out = strconv.AppendUint(out, enc.uint64(v), 10)
		case vrAT:
			out = append(out, NewTag(enc.uint16(v), enc.uint16(v[2:])).String()...)
		}
	}
	return string(out)
}
