package dimse

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 9.3.1).
const (
	pduAssociateRQ byte = 0x01
	pduAssociateAC byte = 0x02
	pduAssociateRJ byte = 0x03
	pduPDataTF     byte = 0x04
	pduReleaseRQ   byte = 0x05
	pduReleaseRP   byte = 0x06
	pduAbort       byte = 0x07
)

// pduHeaderLength is the type, a reserved byte and the 32-bit length.
const pduHeaderLength = 6

// Variable item types (PS3.8 9.3.2.1–9.3.3.3 and Annex D).
const (
	itemApplicationContext byte = 0x10
	itemPresentationCtxRQ  byte = 0x20
	itemPresentationCtxAC  byte = 0x21
	itemAbstractSyntax     byte = 0x30
	itemTransferSyntax     byte = 0x40
	itemUserInformation    byte = 0x50
	subMaxLength           byte = 0x51
	subImplementationClass byte = 0x52
	subAsyncOperations     byte = 0x53
	subRoleSelection       byte = 0x54
	subImplementationVer   byte = 0x55
	subUserIdentityRQ      byte = 0x58
	subUserIdentityAC      byte = 0x59
)

// PDU is one of the seven upper-layer PDUs. The set is closed.
type PDU interface {
	pduType() byte
}

// AssociateRQ is an A-ASSOCIATE-RQ PDU (PS3.8 9.3.2).
type AssociateRQ struct {
	ProtocolVersion      uint16
	CalledAE, CallingAE  string
	ApplicationContext   string
	PresentationContexts []PresentationContextRQ
	UserInfo             UserInfo
}

// AssociateAC is an A-ASSOCIATE-AC PDU (PS3.8 9.3.3).
type AssociateAC struct {
	ProtocolVersion      uint16
	CalledAE, CallingAE  string
	ApplicationContext   string
	PresentationContexts []PresentationContextAC
	UserInfo             UserInfo
}

// AssociateRJ is an A-ASSOCIATE-RJ PDU (PS3.8 9.3.4).
type AssociateRJ struct {
	Result, Source, Reason byte
}

// PDataTF is a P-DATA-TF PDU (PS3.8 9.3.5) decoded whole; the SCP reads
// large data sets through pdvReader instead.
type PDataTF struct {
	Items []PDV
}

// PDV is one presentation data value item (PS3.8 9.3.5.1 and E.2).
type PDV struct {
	ContextID byte
	Command   bool // message control header bit 0
	Last      bool // message control header bit 1
	Data      []byte
}

// ReleaseRQ is an A-RELEASE-RQ PDU (PS3.8 9.3.6).
type ReleaseRQ struct{}

// ReleaseRP is an A-RELEASE-RP PDU (PS3.8 9.3.7).
type ReleaseRP struct{}

// Abort is an A-ABORT PDU (PS3.8 9.3.8).
type Abort struct {
	Source, Reason byte
}

func (*AssociateRQ) pduType() byte { return pduAssociateRQ }
func (*AssociateAC) pduType() byte { return pduAssociateAC }
func (*AssociateRJ) pduType() byte { return pduAssociateRJ }
func (*PDataTF) pduType() byte     { return pduPDataTF }
func (*ReleaseRQ) pduType() byte   { return pduReleaseRQ }
func (*ReleaseRP) pduType() byte   { return pduReleaseRP }
func (*Abort) pduType() byte       { return pduAbort }

// PresentationContextRQ is a proposed presentation context (PS3.8 9.3.2.2).
type PresentationContextRQ struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
}

// Presentation context results (PS3.8 Table 9-18).
const (
	ResultAcceptance                 byte = 0
	ResultUserRejection              byte = 1
	ResultNoReason                   byte = 2
	ResultAbstractSyntaxNotSupported byte = 3
	ResultTransferSyntaxNotSupported byte = 4
)

// PresentationContextAC is a presentation context answer (PS3.8 9.3.3.2).
type PresentationContextAC struct {
	ID             byte
	Result         byte
	TransferSyntax string
}

// UserInfo holds the User Information sub-items (PS3.8 9.3.2.3, Annex D,
// PS3.7 D.3.3). Unknown sub-items are skipped, as D.3.3 requires.
type UserInfo struct {
	MaxLength                 uint32 // 0 = no limit
	ImplementationClassUID    string
	ImplementationVersionName string
	// AsyncOps is set when the peer sent the Asynchronous Operations Window
	// sub-item (PS3.7 D.3.3.3).
	AsyncOps       *AsyncOps
	RoleSelections []RoleSelection
	// UserIdentity is the requestor's identity (PS3.7 D.3.3.7); we tolerate
	// it and never require a positive response.
	UserIdentity *UserIdentity
	// UserIdentityResponse is the acceptor's server response (AC only).
	UserIdentityResponse []byte
}

// AsyncOps is the Asynchronous Operations Window (PS3.7 D.3.3.3).
type AsyncOps struct {
	MaxInvoked, MaxPerformed uint16
}

// RoleSelection is an SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4).
type RoleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// UserIdentity is the User Identity Negotiation request (PS3.7 D.3.3.7).
type UserIdentity struct {
	Type                      byte
	PositiveResponseRequested bool
	Primary, Secondary        []byte
}

// pduLimit returns the largest body we accept for a PDU type, given the
// P-DATA-TF limit we advertised.
func pduLimit(typ byte, maxPData uint32) uint32 {
	switch typ {
	case pduAssociateRQ, pduAssociateAC:
		return maxAssociatePDULength
	case pduPDataTF:
		if maxPData == 0 {
			return 1<<32 - 1
		}
		return maxPData
	default:
		return 4 // RJ, release and abort PDUs have a fixed 4-byte body
	}
}

// readPDUHeader reads the 6-byte PDU header (PS3.8 9.3.1) into hdr and
// returns the type and declared body length.
func readPDUHeader(r io.Reader, hdr *[pduHeaderLength]byte) (byte, uint32, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	return hdr[0], binary.BigEndian.Uint32(hdr[2:]), nil
}

// ReadPDU reads one whole PDU from r. maxPData is the largest P-DATA-TF body
// accepted; other PDU types have their own fixed limits. The declared length
// is checked before the body is allocated.
func ReadPDU(r io.Reader, maxPData uint32) (PDU, error) {
	var hdr [pduHeaderLength]byte
	typ, n, err := readPDUHeader(r, &hdr)
	if err != nil {
		return nil, err
	}
	if typ < pduAssociateRQ || typ > pduAbort {
		return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownPDU, typ)
	}
	if lim := pduLimit(typ, maxPData); n > lim {
		return nil, fmt.Errorf("%w: type 0x%02x declares %d bytes, limit %d", ErrPDUTooLarge, typ, n, lim)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrMalformedPDU, err)
	}
	return DecodePDU(typ, body)
}

// DecodePDU decodes the body of a PDU of the given type.
func DecodePDU(typ byte, body []byte) (PDU, error) {
	d := &decoder{b: body}
	var p PDU
	switch typ {
	case pduAssociateRQ:
		p = decodeAssociateRQ(d)
	case pduAssociateAC:
		p = decodeAssociateAC(d)
	case pduAssociateRJ:
		d.skip(1)
		p = &AssociateRJ{Result: d.u8(), Source: d.u8(), Reason: d.u8()}
	case pduPDataTF:
		p = decodePDataTF(d)
	case pduReleaseRQ:
		d.skip(4)
		p = &ReleaseRQ{}
	case pduReleaseRP:
		d.skip(4)
		p = &ReleaseRP{}
	case pduAbort:
		d.skip(2)
		p = &Abort{Source: d.u8(), Reason: d.u8()}
	default:
		return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownPDU, typ)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("%w: type 0x%02x: %v", ErrMalformedPDU, typ, err)
	}
	return p, nil
}

// decoder reads big-endian fields from b, keeping the first error (after
// grailbio/go-dicom dicomio.Decoder): once short, every read returns zero.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || len(d.b)-d.off < n {
		d.err = fmt.Errorf("need %d bytes at offset %d, have %d", n, d.off, len(d.b)-d.off)
		return false
	}
	return true
}

func (d *decoder) u8() byte {
	if !d.need(1) {
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	v := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return v
}

func (d *decoder) skip(n int) { d.bytes(n) }

func (d *decoder) empty() bool { return d.err != nil || d.off >= len(d.b) }

// sub returns a decoder over the next n bytes.
func (d *decoder) sub(n int) *decoder {
	b := d.bytes(n)
	if d.err != nil {
		return &decoder{err: d.err}
	}
	return &decoder{b: b}
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// absorb takes a sub-decoder's error as ours.
func (d *decoder) absorb(s *decoder) {
	if d.err == nil && s.err != nil {
		d.err = s.err
	}
}

func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.b) {
		return fmt.Errorf("%d trailing bytes", len(d.b)-d.off)
	}
	return nil
}

// uid decodes a UID value: trailing NUL padding and spaces are not part of it.
func uid(b []byte) string {
	return strings.TrimRight(string(b), "\x00 ")
}

// aeTitle decodes a 16-byte AE title field; leading and trailing spaces are
// not significant (PS3.8 9.3.2).
func aeTitle(b []byte) string {
	return strings.Trim(string(b), " \x00")
}

// associateFixed decodes the fields A-ASSOCIATE-RQ and -AC share (PS3.8
// Tables 9-11 and 9-17).
func associateFixed(d *decoder) (version uint16, called, calling string) {
	version = d.u16()
	d.skip(2)
	called = aeTitle(d.bytes(16))
	calling = aeTitle(d.bytes(16))
	d.skip(32)
	return version, called, calling
}

// item reads a variable item header: type, reserved byte and 16-bit length.
func (d *decoder) item() (typ byte, body *decoder) {
	typ = d.u8()
	d.skip(1)
	n := d.u16()
	return typ, d.sub(int(n))
}

func decodeAssociateRQ(d *decoder) PDU {
	p := &AssociateRQ{}
	p.ProtocolVersion, p.CalledAE, p.CallingAE = associateFixed(d)
	p.ApplicationContext, p.UserInfo = associateItems(d, itemPresentationCtxRQ, func(it *decoder) {
		pc := PresentationContextRQ{ID: it.u8()}
		it.skip(3)
		for !it.empty() {
			st, sit := it.item()
			switch st {
			case itemAbstractSyntax:
				pc.AbstractSyntax = uid(sit.bytes(len(sit.b)))
			case itemTransferSyntax:
				pc.TransferSyntaxes = append(pc.TransferSyntaxes, uid(sit.bytes(len(sit.b))))
			default:
				it.fail("unexpected sub-item 0x%02x in presentation context", st)
			}
			it.absorb(sit)
		}
		p.PresentationContexts = append(p.PresentationContexts, pc)
	})
	return p
}

func decodeAssociateAC(d *decoder) PDU {
	p := &AssociateAC{}
	p.ProtocolVersion, p.CalledAE, p.CallingAE = associateFixed(d)
	p.ApplicationContext, p.UserInfo = associateItems(d, itemPresentationCtxAC, func(it *decoder) {
		pc := PresentationContextAC{ID: it.u8()}
		it.skip(1)
		pc.Result = it.u8()
		it.skip(1)
		for !it.empty() {
			st, sit := it.item()
			if st == itemTransferSyntax {
				pc.TransferSyntax = uid(sit.bytes(len(sit.b)))
			}
			it.absorb(sit)
		}
		p.PresentationContexts = append(p.PresentationContexts, pc)
	})
	return p
}

// associateItems walks the variable items of an A-ASSOCIATE-RQ or -AC
// (PS3.8 9.3.2, 9.3.3): it returns the application context name and the
// user information, and hands each presentation context item of type
// pcType (at most 128) to pc. Unrecognized items are ignored (PS3.8 9.3.1).
func associateItems(d *decoder, pcType byte, pc func(it *decoder)) (appContext string, ui UserInfo) {
	contexts := 0
	for !d.empty() {
		typ, it := d.item()
		switch typ {
		case itemApplicationContext:
			appContext = uid(it.bytes(len(it.b)))
		case pcType:
			if contexts++; contexts > maxPresentationContexts {
				d.fail("more than %d presentation contexts", maxPresentationContexts)
				break
			}
			pc(it)
		case itemUserInformation:
			ui = decodeUserInfo(it)
		}
		d.absorb(it)
	}
	return appContext, ui
}

func decodeUserInfo(d *decoder) UserInfo {
	var u UserInfo
	for !d.empty() {
		typ, it := d.item()
		switch typ {
		case subMaxLength:
			u.MaxLength = it.u32()
		case subImplementationClass:
			u.ImplementationClassUID = uid(it.bytes(len(it.b)))
		case subImplementationVer:
			u.ImplementationVersionName = strings.TrimRight(string(it.bytes(len(it.b))), " \x00")
		case subAsyncOperations:
			u.AsyncOps = &AsyncOps{MaxInvoked: it.u16(), MaxPerformed: it.u16()}
		case subRoleSelection:
			if len(u.RoleSelections) >= maxPresentationContexts {
				d.fail("more than %d role selections", maxPresentationContexts)
				break
			}
			n := it.u16()
			rs := RoleSelection{SOPClassUID: uid(it.bytes(int(n)))}
			rs.SCU = it.u8() == 1
			rs.SCP = it.u8() == 1
			u.RoleSelections = append(u.RoleSelections, rs)
		case subUserIdentityRQ:
			ui := &UserIdentity{Type: it.u8(), PositiveResponseRequested: it.u8() == 1}
			ui.Primary = it.bytes(int(it.u16()))
			ui.Secondary = it.bytes(int(it.u16()))
			u.UserIdentity = ui
		case subUserIdentityAC:
			u.UserIdentityResponse = it.bytes(int(it.u16()))
		default:
			// Extended negotiation and other sub-items are skipped (PS3.7 D.3.3).
		}
		// Sub-items may carry bytes we do not interpret; the item length
		// bounds them, so skipping is safe.
		it.skip(len(it.b) - it.off)
		d.absorb(it)
	}
	return u
}

func decodePDataTF(d *decoder) PDU {
	p := &PDataTF{}
	for !d.empty() {
		n := d.u32()
		if n < 2 {
			d.fail("PDV item length %d < 2", n)
			break
		}
		if uint64(n) > uint64(len(d.b)-d.off) {
			d.fail("PDV item length %d exceeds the PDU", n)
			break
		}
		it := d.sub(int(n))
		pdv := PDV{ContextID: it.u8()}
		h := it.u8()
		pdv.Command = h&0x01 != 0
		pdv.Last = h&0x02 != 0
		pdv.Data = it.bytes(len(it.b) - it.off)
		p.Items = append(p.Items, pdv)
	}
	if d.err == nil && len(p.Items) == 0 {
		d.fail("P-DATA-TF without PDV items")
	}
	return p
}

// EncodePDU appends the encoding of p (header included) to dst.
func EncodePDU(dst []byte, p PDU) []byte {
	start := len(dst)
	dst = append(dst, p.pduType(), 0, 0, 0, 0, 0)
	switch p := p.(type) {
	case *AssociateRQ:
		dst = appendAssociateFixed(dst, p.ProtocolVersion, p.CalledAE, p.CallingAE)
		dst = appendItem(dst, itemApplicationContext, []byte(p.ApplicationContext))
		for _, pc := range p.PresentationContexts {
			h := len(dst)
			dst = append(dst, itemPresentationCtxRQ, 0, 0, 0, pc.ID, 0, 0, 0)
			dst = appendItem(dst, itemAbstractSyntax, []byte(pc.AbstractSyntax))
			for _, ts := range pc.TransferSyntaxes {
				dst = appendItem(dst, itemTransferSyntax, []byte(ts))
			}
			binary.BigEndian.PutUint16(dst[h+2:], uint16(len(dst)-h-4))
		}
		dst = appendUserInfo(dst, &p.UserInfo)
	case *AssociateAC:
		dst = appendAssociateFixed(dst, p.ProtocolVersion, p.CalledAE, p.CallingAE)
		dst = appendItem(dst, itemApplicationContext, []byte(p.ApplicationContext))
		for _, pc := range p.PresentationContexts {
			h := len(dst)
			dst = append(dst, itemPresentationCtxAC, 0, 0, 0, pc.ID, 0, pc.Result, 0)
			// PS3.8 9.3.3.2: the transfer syntax sub-item is present but not
			// significant when the context is rejected.
			dst = appendItem(dst, itemTransferSyntax, []byte(pc.TransferSyntax))
			binary.BigEndian.PutUint16(dst[h+2:], uint16(len(dst)-h-4))
		}
		dst = appendUserInfo(dst, &p.UserInfo)
	case *AssociateRJ:
		dst = append(dst, 0, p.Result, p.Source, p.Reason)
	case *PDataTF:
		for _, it := range p.Items {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(it.Data)+2))
			dst = append(dst, it.ContextID, pdvHeader(it.Command, it.Last))
			dst = append(dst, it.Data...)
		}
	case *ReleaseRQ, *ReleaseRP:
		dst = append(dst, 0, 0, 0, 0)
	case *Abort:
		dst = append(dst, 0, 0, p.Source, p.Reason)
	}
	binary.BigEndian.PutUint32(dst[start+2:], uint32(len(dst)-start-pduHeaderLength))
	return dst
}

func pdvHeader(command, last bool) byte {
	var h byte
	if command {
		h |= 0x01
	}
	if last {
		h |= 0x02
	}
	return h
}

func appendAssociateFixed(dst []byte, version uint16, called, calling string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, version)
	dst = append(dst, 0, 0)
	dst = appendAE(dst, called)
	dst = appendAE(dst, calling)
	return append(dst, make([]byte, 32)...)
}

func appendAE(dst []byte, ae string) []byte {
	var f [16]byte
	for i := range f {
		f[i] = ' '
	}
	copy(f[:], ae)
	return append(dst, f[:]...)
}

func appendItem(dst []byte, typ byte, v []byte) []byte {
	dst = append(dst, typ, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(v)))
	return append(dst, v...)
}

func appendUserInfo(dst []byte, u *UserInfo) []byte {
	h := len(dst)
	dst = append(dst, itemUserInformation, 0, 0, 0)
	dst = appendItem(dst, subMaxLength, binary.BigEndian.AppendUint32(nil, u.MaxLength))
	dst = appendItem(dst, subImplementationClass, []byte(u.ImplementationClassUID))
	if u.AsyncOps != nil {
		v := binary.BigEndian.AppendUint16(nil, u.AsyncOps.MaxInvoked)
		dst = appendItem(dst, subAsyncOperations, binary.BigEndian.AppendUint16(v, u.AsyncOps.MaxPerformed))
	}
	for _, rs := range u.RoleSelections {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(rs.SOPClassUID)))
		v = append(v, rs.SOPClassUID...)
		v = append(v, boolByte(rs.SCU), boolByte(rs.SCP))
		dst = appendItem(dst, subRoleSelection, v)
	}
	if u.ImplementationVersionName != "" {
		dst = appendItem(dst, subImplementationVer, []byte(u.ImplementationVersionName))
	}
	if ui := u.UserIdentity; ui != nil {
		v := []byte{ui.Type, boolByte(ui.PositiveResponseRequested)}
		v = binary.BigEndian.AppendUint16(v, uint16(len(ui.Primary)))
		v = append(v, ui.Primary...)
		v = binary.BigEndian.AppendUint16(v, uint16(len(ui.Secondary)))
		v = append(v, ui.Secondary...)
		dst = appendItem(dst, subUserIdentityRQ, v)
	}
	if u.UserIdentityResponse != nil {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(u.UserIdentityResponse)))
		dst = appendItem(dst, subUserIdentityAC, append(v, u.UserIdentityResponse...))
	}
	binary.BigEndian.PutUint16(dst[h+2:], uint16(len(dst)-h-4))
	return dst
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
