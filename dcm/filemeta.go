package dcm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FileMeta is the Part 10 file meta information (PS3.10 7.1).
type FileMeta struct {
	MediaStorageSOPClassUID      string
	MediaStorageSOPInstanceUID   string
	TransferSyntaxUID            string
	ImplementationClassUID       string
	ImplementationVersionName    string
	SourceApplicationEntityTitle string
}

const (
	preambleLength = 128 // PS3.10 7.1
	magic          = "DICM"
)

// Maximum value lengths of the meta VRs (PS3.5 Table 6.2-1).
const (
	maxUILength = 64
	maxSHLength = 16
	maxAELength = 16
)

// WriteFileMeta writes the 128-byte preamble, "DICM" and group 0002
// (with its group length) in explicit VR little endian, PS3.10 7.1.
//
// MediaStorageSOPClassUID, MediaStorageSOPInstanceUID and TransferSyntaxUID
// are required. An empty ImplementationClassUID is written as radgate's
// ImplementationClassUID (with ImplementationVersionName when that is also
// empty). ImplementationVersionName and SourceApplicationEntityTitle are
// written only when set. The whole header goes out in one Write call.
func WriteFileMeta(w io.Writer, m FileMeta) error {
	if m.ImplementationClassUID == "" {
		m.ImplementationClassUID = ImplementationClassUID
		if m.ImplementationVersionName == "" {
			m.ImplementationVersionName = ImplementationVersionName
		}
	}
	for _, u := range [...]struct{ name, v string }{
		{"MediaStorageSOPClassUID", m.MediaStorageSOPClassUID},
		{"MediaStorageSOPInstanceUID", m.MediaStorageSOPInstanceUID},
		{"TransferSyntaxUID", m.TransferSyntaxUID},
		{"ImplementationClassUID", m.ImplementationClassUID},
	} {
		if !ValidUID(u.v) {
			return fmt.Errorf("%w: %s %q is not a valid UID", ErrInvalidFileMeta, u.name, u.v)
		}
	}
	if !validText(m.ImplementationVersionName, maxSHLength) {
		return fmt.Errorf("%w: ImplementationVersionName %q", ErrInvalidFileMeta, m.ImplementationVersionName)
	}
	if !validText(m.SourceApplicationEntityTitle, maxAELength) {
		return fmt.Errorf("%w: SourceApplicationEntityTitle %q", ErrInvalidFileMeta, m.SourceApplicationEntityTitle)
	}

	// Worst case: group length, version, 4 UIDs of 64 bytes, two 16-byte
	// texts.
	const maxLen = preambleLength + len(magic) + 12 + 14 + 4*(8+maxUILength) + 2*(8+maxSHLength)
	b := make([]byte, preambleLength, maxLen)
	b = append(b, magic...)
	lenAt := len(b) + 8
	b = appendMetaElement(b, tagMetaGroupLength, "UL", []byte{0, 0, 0, 0})
	groupStart := len(b)
	b = appendMetaElement(b, tagMetaVersion, "OB", []byte{0, 1}) // PS3.10 7.1: 00\01
	b = appendMetaString(b, tagMediaStorageSOPClassUID, "UI", m.MediaStorageSOPClassUID, 0)
	b = appendMetaString(b, tagMediaStorageSOPInstanceUID, "UI", m.MediaStorageSOPInstanceUID, 0)
	b = appendMetaString(b, tagTransferSyntaxUID, "UI", m.TransferSyntaxUID, 0)
	b = appendMetaString(b, tagImplementationClassUID, "UI", m.ImplementationClassUID, 0)
	if m.ImplementationVersionName != "" {
		b = appendMetaString(b, tagImplementationVersionName, "SH", m.ImplementationVersionName, ' ')
	}
	if m.SourceApplicationEntityTitle != "" {
		b = appendMetaString(b, tagSourceApplicationEntityTitle, "AE", m.SourceApplicationEntityTitle, ' ')
	}
	binary.LittleEndian.PutUint32(b[lenAt:], uint32(len(b)-groupStart))
	_, err := w.Write(b)
	return err
}

// validText accepts the default character repertoire without control
// characters or backslash, PS3.5 6.1.2 and Table 6.2-1 (SH, AE).
func validText(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E || s[i] == '\\' {
			return false
		}
	}
	return true
}

func appendMetaString(b []byte, t Tag, vr, s string, pad byte) []byte {
	n := len(s) + len(s)&1
	b = appendMetaHeader(b, t, vr, n)
	b = append(b, s...)
	if len(s)&1 == 1 {
		b = append(b, pad)
	}
	return b
}

func appendMetaElement(b []byte, t Tag, vr string, v []byte) []byte {
	b = appendMetaHeader(b, t, vr, len(v))
	return append(b, v...)
}

// appendMetaHeader appends an explicit VR little endian element header
// (PS3.5 7.1.2): OB and the other long VRs have a reserved field and a
// 32-bit length.
func appendMetaHeader(b []byte, t Tag, vr string, n int) []byte {
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = append(b, vr...)
	if isLongVR(uint16(vr[0])<<8 | uint16(vr[1])) {
		b = append(b, 0, 0)
		return binary.LittleEndian.AppendUint32(b, uint32(n))
	}
	return binary.LittleEndian.AppendUint16(b, uint16(n))
}

// OpenPart10 reads a Part 10 file's preamble and meta from r and returns the
// meta and a reader positioned at the first byte of the dataset. Files
// without a preamble or without meta are accepted when the dataset start can
// be recognized.
//
// Accepted layouts, in the order tried:
//   - 128-byte preamble, "DICM", group 0002 (PS3.10 7.1);
//   - "DICM" at offset 0 followed by group 0002 (no preamble);
//   - group 0002 at offset 0 (neither preamble nor prefix);
//   - a bare data set (PS3.5 7) whose first element is in group 0008 (or
//     0000-0006): implicit or explicit VR and the byte order are sniffed
//     from it, the SOP Class and Instance UIDs are taken from (0008,0016)
//     and (0008,0018) if they occur in the first 64 KiB, and
//     TransferSyntaxUID names the sniffed encoding.
//
// When the meta lacks (0002,0010) the data set encoding is sniffed the same
// way. Group 0002 is read element by element, whatever its group length
// says, up to MaxFileMetaLength bytes. Anything else is ErrNotDICOM; a
// broken meta group is ErrMalformed. OpenPart10 never reads more from r than
// it returns through the reader; bytes it had to look at are replayed.
func OpenPart10(r io.Reader) (FileMeta, io.Reader, error) {
	var head [preambleLength + 4]byte
	n, err := io.ReadFull(r, head[:])
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		// A short stream may still be a small bare data set.
	case err != nil:
		return FileMeta{}, nil, fmt.Errorf("dcm: reading file header: %w", err)
	}
	if n == len(head) && string(head[preambleLength:]) == magic {
		return readMeta(r)
	}
	// Copy what was read: head must not escape into the returned reader.
	got := append([]byte(nil), head[:n]...)
	if n >= 4 && string(got[:4]) == magic {
		return readMeta(replay(got[4:], r))
	}
	if n >= 6 && got[0] == 0x02 && got[1] == 0x00 && isVR(got[4], got[5]) {
		return readMeta(replay(got, r))
	}
	return sniffDataSet(FileMeta{}, got, r)
}

// replay returns a reader that yields b and then r.
func replay(b []byte, r io.Reader) io.Reader {
	if len(b) == 0 {
		return r
	}
	return io.MultiReader(bytes.NewReader(b), r)
}

// readMeta reads group 0002 (explicit VR little endian, PS3.10 7.1) from r,
// then the header of the first data set element, which it replays.
func readMeta(r io.Reader) (FileMeta, io.Reader, error) {
	var m FileMeta
	var hdr [12]byte
	var val [maxUILength + 2]byte
	total := 0
	for {
		n, err := io.ReadFull(r, hdr[:8])
		if err == io.EOF {
			// Meta but no data set: let the caller's ScanDataset see EOF.
			return m, r, checkMetaEnd(m)
		}
		if err != nil {
			return m, nil, metaReadErr(err)
		}
		t := NewTag(binary.LittleEndian.Uint16(hdr[0:]), binary.LittleEndian.Uint16(hdr[2:]))
		if t.Group() != 0x0002 {
			if err := checkMetaEnd(m); err != nil {
				return m, nil, err
			}
			rest := replay(append([]byte(nil), hdr[:n]...), r)
			if m.TransferSyntaxUID == "" {
				m, rest, err := sniffDataSet(m, nil, rest)
				if errors.Is(err, ErrNotDICOM) {
					err = fmt.Errorf("%w: file meta lacks (0002,0010) and the data set encoding is not recognizable", ErrMalformed)
				}
				return m, rest, err
			}
			return m, rest, nil
		}
		if !isVR(hdr[4], hdr[5]) {
			return m, nil, fmt.Errorf("%w: file meta element %v has no explicit VR", ErrMalformed, t)
		}
		vr := uint16(hdr[4])<<8 | uint16(hdr[5])
		length := uint32(binary.LittleEndian.Uint16(hdr[6:]))
		hl := 8
		if isLongVR(vr) {
			if _, err := io.ReadFull(r, hdr[8:12]); err != nil {
				return m, nil, metaReadErr(err)
			}
			length = binary.LittleEndian.Uint32(hdr[8:])
			hl = 12
		}
		if length > MaxFileMetaLength || total+hl+int(length) > MaxFileMetaLength {
			return m, nil, fmt.Errorf("%w: file meta longer than %d bytes", ErrMalformed, MaxFileMetaLength)
		}
		total += hl + int(length)
		var dst *string
		switch t {
		case tagMediaStorageSOPClassUID:
			dst = &m.MediaStorageSOPClassUID
		case tagMediaStorageSOPInstanceUID:
			dst = &m.MediaStorageSOPInstanceUID
		case tagTransferSyntaxUID:
			dst = &m.TransferSyntaxUID
		case tagImplementationClassUID:
			dst = &m.ImplementationClassUID
		case tagImplementationVersionName:
			dst = &m.ImplementationVersionName
		case tagSourceApplicationEntityTitle:
			dst = &m.SourceApplicationEntityTitle
		}
		if dst == nil || int(length) > len(val) {
			// Unneeded or over-long (invalid for its VR): skip it.
			if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
				return m, nil, metaReadErr(err)
			}
			continue
		}
		if _, err := io.ReadFull(r, val[:length]); err != nil {
			return m, nil, metaReadErr(err)
		}
		*dst = string(trimPadding(val[:length]))
	}
}

// checkMetaEnd rejects a meta group that identifies nothing.
func checkMetaEnd(m FileMeta) error {
	if m == (FileMeta{}) {
		return fmt.Errorf("%w: empty file meta information", ErrMalformed)
	}
	return nil
}

func metaReadErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: file meta truncated: %w", ErrMalformed, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("dcm: reading file meta: %w", err)
}

// sniffDataSet recognizes a data set without (usable) file meta. got holds
// bytes already read from r. It buffers up to maxSniffLength bytes while
// walking the first top-level elements, fills the transfer syntax and, when
// m has none, the SOP Class and Instance UIDs, and replays what it read.
func sniffDataSet(m FileMeta, got []byte, r io.Reader) (FileMeta, io.Reader, error) {
	sn := sniffer{buf: got, r: r}
	if !sn.fill(8) {
		if sn.err != nil {
			return m, nil, sn.err
		}
		if len(sn.buf) == 0 && m != (FileMeta{}) {
			return m, r, nil // meta without data set
		}
		return m, nil, fmt.Errorf("%w: %d bytes, no data set", ErrNotDICOM, len(sn.buf))
	}
	b := sn.buf
	if binary.LittleEndian.Uint64(b) == 0 {
		// Tag (0000,0000) of length 0: zero fill, not a data set.
		return m, nil, fmt.Errorf("%w: starts with zero bytes", ErrNotDICOM)
	}
	le := binary.LittleEndian.Uint16(b[0:])
	be := binary.BigEndian.Uint16(b[0:])
	enc := encoding{explicit: isVR(b[4], b[5])}
	switch {
	case plausibleFirstGroup(le):
	case plausibleFirstGroup(be) && enc.explicit:
		// Implicit VR big endian does not exist (PS3.5 10.1).
		enc.big = true
	default:
		return m, nil, fmt.Errorf("%w: no file meta and no recognizable first element", ErrNotDICOM)
	}
	switch {
	case enc.big:
		m.TransferSyntaxUID = ExplicitVRBigEndian
	case enc.explicit:
		m.TransferSyntaxUID = ExplicitVRLittleEndian
	default:
		m.TransferSyntaxUID = ImplicitVRLittleEndian
	}
	wantUIDs := m.MediaStorageSOPInstanceUID == "" && m.MediaStorageSOPClassUID == ""
	found := false
	off := 0
	for off+8 <= maxSniffLength {
		if !sn.fill(off + 8) {
			break
		}
		h := sn.buf[off:]
		t := NewTag(enc.uint16(h[0:]), enc.uint16(h[2:]))
		var length uint32
		hl := 8
		if t.Group() != 0xFFFE && enc.explicit {
			if !isVR(h[4], h[5]) {
				break
			}
			if isLongVR(uint16(h[4])<<8 | uint16(h[5])) {
				if !sn.fill(off + 12) {
					break
				}
				h = sn.buf[off:]
				length = enc.uint32(h[8:])
				hl = 12
			} else {
				length = uint32(enc.uint16(h[6:]))
			}
		} else {
			length = enc.uint32(h[4:])
		}
		if off == 0 {
			found = true // the first header decoded
		}
		if t > SOPInstanceUID || length == undefinedLength || t.Group() == 0xFFFE {
			break
		}
		if (t == SOPClassUID || t == SOPInstanceUID) && length <= maxUILength+2 {
			if !sn.fill(off + hl + int(length)) {
				break
			}
			v := string(trimPadding(sn.buf[off+hl : off+hl+int(length)]))
			if wantUIDs {
				if t == SOPClassUID {
					m.MediaStorageSOPClassUID = v
				} else {
					m.MediaStorageSOPInstanceUID = v
				}
			}
		}
		if int64(off)+int64(hl)+int64(length) > maxSniffLength {
			break
		}
		off += hl + int(length)
	}
	if sn.err != nil {
		return m, nil, sn.err
	}
	if !found && m.MediaStorageSOPInstanceUID == "" {
		return FileMeta{}, nil, fmt.Errorf("%w: no file meta and no recognizable first element", ErrNotDICOM)
	}
	return m, replay(sn.buf, r), nil
}

// plausibleFirstGroup accepts the groups a data set can start with: the
// command group, the (misplaced) meta and directory groups, the illegal
// odd groups 1-7 some test writers use, and the identifying group 0008
// that nearly every data set starts with.
func plausibleFirstGroup(g uint16) bool {
	return g <= 0x0008
}

// sniffer buffers the start of a stream.
type sniffer struct {
	buf []byte
	r   io.Reader
	err error // a read error other than EOF
}

// fill makes sn.buf hold at least n bytes, reading in chunks. It reports
// false at EOF or on error.
func (sn *sniffer) fill(n int) bool {
	if len(sn.buf) >= n {
		return true
	}
	if sn.err != nil || n > maxSniffLength+12 {
		return false
	}
	want := max(n, min(len(sn.buf)+4096, maxSniffLength))
	if cap(sn.buf) < want {
		nb := make([]byte, len(sn.buf), max(want, 2*cap(sn.buf)))
		copy(nb, sn.buf)
		sn.buf = nb
	}
	k, err := io.ReadAtLeast(sn.r, sn.buf[len(sn.buf):want], n-len(sn.buf))
	sn.buf = sn.buf[:len(sn.buf)+k]
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		sn.err = fmt.Errorf("dcm: reading data set: %w", err)
	}
	return len(sn.buf) >= n
}
