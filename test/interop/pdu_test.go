package interop

// Hand-built upper-layer PDUs (PS3.8 9.3) and DIMSE command sets (PS3.7
// 9.3, E.1), written here from the standard rather than with radgate's dimse
// package, so the negative tests are an independent check of it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// PDU types (PS3.8 9.3.1).
const (
	pduAssociateRQ = 0x01
	pduAssociateAC = 0x02
	pduAssociateRJ = 0x03
	pduPData       = 0x04
	pduReleaseRQ   = 0x05
	pduReleaseRP   = 0x06
	pduAbort       = 0x07
)

// UIDs used by the hand-built associations.
const (
	uidAppContext    = "1.2.840.10008.3.1.1.1"
	uidVerification  = "1.2.840.10008.1.1"
	uidCTImage       = "1.2.840.10008.5.1.4.1.1.2"
	uidImplicitLE    = "1.2.840.10008.1.2"
	uidExplicitLE    = "1.2.840.10008.1.2.1"
	uidOurImplClass  = "1.2.826.0.1.3680043.10.999.1" // test-only implementation class
	ourMaxPDU        = 16384
	maxPDUWeAccept   = 1 << 20 // a reply bigger than this is a bug, not a PDU
	replyReadTimeout = 10 * time.Second
	afterAbortWait   = 500 * time.Millisecond // how long to watch for PDUs after an A-ABORT
)

// presCtx is one proposed presentation context.
type presCtx struct {
	id       byte
	abstract string
	ts       []string
}

// aeField is a 16-byte, space-padded AE title (PS3.8 9.3.2).
func aeField(ae string) []byte {
	b := []byte(fmt.Sprintf("%-16s", ae))
	return b[:16]
}

// item is a variable item or sub-item: type, reserved, 2-byte length, value.
func item(typ byte, value []byte) []byte {
	b := []byte{typ, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// pdu is a PDU: type, reserved, 4-byte length, body.
func pdu(typ byte, body []byte) []byte {
	b := []byte{typ, 0}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// associateRQ builds an A-ASSOCIATE-RQ (PS3.8 9.3.2).
func associateRQ(called, calling string, pcs []presCtx) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, 1) // protocol version
	body = append(body, 0, 0)
	body = append(body, aeField(called)...)
	body = append(body, aeField(calling)...)
	body = append(body, make([]byte, 32)...)
	body = append(body, item(0x10, []byte(uidAppContext))...)
	for _, pc := range pcs {
		v := []byte{pc.id, 0, 0, 0}
		v = append(v, item(0x30, []byte(pc.abstract))...)
		for _, ts := range pc.ts {
			v = append(v, item(0x40, []byte(ts))...)
		}
		body = append(body, item(0x20, v)...)
	}
	var ui []byte
	ui = append(ui, item(0x51, binary.BigEndian.AppendUint32(nil, ourMaxPDU))...)
	ui = append(ui, item(0x52, []byte(uidOurImplClass))...)
	ui = append(ui, item(0x55, []byte("RADGATE_ITEST"))...)
	body = append(body, item(0x50, ui)...)
	return pdu(pduAssociateRQ, body)
}

// readPDU reads one PDU, refusing bodies larger than maxPDUWeAccept.
func readPDU(c net.Conn, timeout time.Duration) (typ byte, body []byte, err error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var h [6]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[2:])
	if n > maxPDUWeAccept {
		return h[0], nil, fmt.Errorf("PDU type 0x%02x declares %d bytes", h[0], n)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return h[0], nil, err
	}
	return h[0], body, nil
}

// acceptedCtx is one presentation context of an A-ASSOCIATE-AC.
type acceptedCtx struct {
	result byte // 0 acceptance (PS3.8 Table 9-18)
	ts     string
}

// associateAC is what the tests need of an A-ASSOCIATE-AC (PS3.8 9.3.3).
type associateAC struct {
	contexts  map[byte]acceptedCtx
	maxLength uint32
}

func parseAC(body []byte) (associateAC, error) {
	ac := associateAC{contexts: map[byte]acceptedCtx{}}
	if len(body) < 68 {
		return ac, errors.New("A-ASSOCIATE-AC shorter than its fixed fields")
	}
	for off := 68; off < len(body); {
		if off+4 > len(body) {
			return ac, errors.New("A-ASSOCIATE-AC item header past the end")
		}
		typ, n := body[off], int(binary.BigEndian.Uint16(body[off+2:]))
		v := body[off+4:]
		if n > len(v) {
			return ac, errors.New("A-ASSOCIATE-AC item past the end")
		}
		v = v[:n]
		switch typ {
		case 0x21:
			if len(v) < 4 {
				return ac, errors.New("short presentation context item")
			}
			pc := acceptedCtx{result: v[2]}
			if len(v) >= 8 && v[4] == 0x40 {
				l := int(binary.BigEndian.Uint16(v[6:]))
				if 8+l <= len(v) {
					pc.ts = strings.TrimRight(string(v[8:8+l]), "\x00 ")
				}
			}
			ac.contexts[v[0]] = pc
		case 0x50:
			for s := 0; s+4 <= len(v); {
				st, sn := v[s], int(binary.BigEndian.Uint16(v[s+2:]))
				if st == 0x51 && sn == 4 && s+8 <= len(v) {
					ac.maxLength = binary.BigEndian.Uint32(v[s+4:])
				}
				s += 4 + sn
			}
		}
		off += 4 + n
	}
	return ac, nil
}

// associateRJ is an A-ASSOCIATE-RJ's fields (PS3.8 9.3.4, Table 9-21).
type associateRJ struct{ result, source, reason byte }

func (rj associateRJ) String() string {
	return fmt.Sprintf("result=%d source=%d reason=%d", rj.result, rj.source, rj.reason)
}

// rawAssociate opens a connection to addr (from local, when not "") and
// negotiates. It returns the open connection and the AC, or the RJ (with a
// closed connection) when rejected.
func rawAssociate(addr, local, called, calling string, pcs []presCtx) (net.Conn, *associateAC, *associateRJ, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := c.Write(associateRQ(called, calling, pcs)); err != nil {
		_ = c.Close()
		return nil, nil, nil, err
	}
	typ, body, err := readPDU(c, replyReadTimeout)
	if err != nil {
		_ = c.Close()
		return nil, nil, nil, fmt.Errorf("reading the answer to A-ASSOCIATE-RQ: %w", err)
	}
	switch typ {
	case pduAssociateAC:
		ac, err := parseAC(body)
		if err != nil {
			_ = c.Close()
			return nil, nil, nil, err
		}
		return c, &ac, nil, nil
	case pduAssociateRJ:
		_ = c.Close()
		if len(body) < 4 {
			return nil, nil, nil, errors.New("short A-ASSOCIATE-RJ")
		}
		return nil, nil, &associateRJ{result: body[1], source: body[2], reason: body[3]}, nil
	default:
		_ = c.Close()
		return nil, nil, nil, fmt.Errorf("answer to A-ASSOCIATE-RQ is PDU type 0x%02x", typ)
	}
}

// pData builds a P-DATA-TF with one PDV (PS3.8 9.3.5, E.2): message control
// header bit 0 = command, bit 1 = last fragment.
func pData(pcid byte, command, last bool, data []byte) []byte {
	mch := byte(0)
	if command {
		mch |= 1
	}
	if last {
		mch |= 2
	}
	pdv := binary.BigEndian.AppendUint32(nil, uint32(len(data)+2))
	pdv = append(pdv, pcid, mch)
	pdv = append(pdv, data...)
	return pdu(pduPData, pdv)
}

// abortPDU is an A-ABORT from the service user (PS3.8 9.3.8).
func abortPDU() []byte { return pdu(pduAbort, []byte{0, 0, 0, 0}) }

// releaseRQ is an A-RELEASE-RQ (PS3.8 9.3.6).
func releaseRQ() []byte { return pdu(pduReleaseRQ, []byte{0, 0, 0, 0}) }

// implicit-VR-little-endian command elements (PS3.7 E.1: command sets are
// always implicit VR little endian).
func cmdElem(tag uint32, value []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(tag))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
	return append(b, value...)
}

func cmdUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func cmdUS(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

// commandSet prefixes elems with (0000,0000) CommandGroupLength.
func commandSet(elems ...[]byte) []byte {
	var body []byte
	for _, e := range elems {
		body = append(body, e...)
	}
	return append(cmdElem(0x00000000, binary.LittleEndian.AppendUint32(nil, uint32(len(body)))), body...)
}

// cEchoRQ is a C-ECHO-RQ command set (PS3.7 9.3.5).
func cEchoRQ(msgID uint16) []byte {
	return commandSet(
		cmdElem(0x00000002, cmdUID(uidVerification)),
		cmdElem(0x00000100, cmdUS(0x0030)),
		cmdElem(0x00000110, cmdUS(msgID)),
		cmdElem(0x00000800, cmdUS(0x0101)), // no data set
	)
}

// cStoreRQ is a C-STORE-RQ command set (PS3.7 9.3.1).
func cStoreRQ(sopClass, sopInstance string, msgID uint16) []byte {
	return commandSet(
		cmdElem(0x00000002, cmdUID(sopClass)),
		cmdElem(0x00000100, cmdUS(0x0001)),
		cmdElem(0x00000110, cmdUS(msgID)),
		cmdElem(0x00000700, cmdUS(0)),      // medium priority
		cmdElem(0x00000800, cmdUS(0x0000)), // a data set follows
		cmdElem(0x00001000, cmdUID(sopInstance)),
	)
}

// readUntilClosed reads PDUs until the peer closes or aborts, returning what
// ended the connection ("A-ABORT …", "closed"), or an error on timeout or on
// any other PDU.
//
// After its A-ABORT the peer awaits the close (Sta13, PS3.8 Table 9-10):
// it may answer more invalid bytes with another A-ABORT (AA-7) but sends
// nothing else. With onePDU — we sent exactly one whole PDU — nothing at all
// may follow: a second A-ABORT means the peer took the rest of our PDU for
// new PDUs instead of skipping its declared length.
func readUntilClosed(c net.Conn, timeout time.Duration, onePDU bool) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		typ, body, err := readPDU(c, time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", fmt.Errorf("connection still open after %s", timeout)
			}
			if typ != 0 {
				return "", err
			}
			return "closed (" + err.Error() + ")", nil
		}
		if typ != pduAbort {
			return "", fmt.Errorf("unexpected PDU type 0x%02x (%d bytes) instead of A-ABORT or close", typ, len(body))
		}
		how := "A-ABORT"
		if len(body) >= 4 {
			how = fmt.Sprintf("A-ABORT source=%d reason=%d", body[2], body[3])
		}
		extra := 0
		for end := time.Now().Add(afterAbortWait); time.Now().Before(end); {
			typ, body, err := readPDU(c, time.Until(end))
			if err != nil {
				break
			}
			if typ != pduAbort || onePDU {
				return "", fmt.Errorf("%s, then PDU type 0x%02x (% x) after it: after our one PDU nothing may follow an A-ABORT", how, typ, body)
			}
			extra++
		}
		if extra > 0 {
			how += fmt.Sprintf(" (and %d more A-ABORT within %s for the bytes we kept sending, AA-7)", extra, afterAbortWait)
		}
		return how, nil
	}
}
