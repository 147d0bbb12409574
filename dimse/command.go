package dimse

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Command Field values (PS3.7 E.1-1).
const (
	CStoreRQ  uint16 = 0x0001
	CStoreRSP uint16 = 0x8001
	CGetRQ    uint16 = 0x0010
	CFindRQ   uint16 = 0x0020
	CMoveRQ   uint16 = 0x0021
	CEchoRQ   uint16 = 0x0030
	CEchoRSP  uint16 = 0x8030
	CCancelRQ uint16 = 0x0FFF

	responseBit uint16 = 0x8000
)

// commandNoDataSet is the Command Data Set Type meaning "no data set"
// (PS3.7 E.1-1); any other value means a data set follows.
const commandNoDataSet uint16 = 0x0101

// Priority is the C-STORE/C-FIND/C-MOVE priority (PS3.7 E.1-1).
type Priority uint16

const (
	PriorityMedium Priority = 0x0000
	PriorityHigh   Priority = 0x0001
	PriorityLow    Priority = 0x0002
)

func (p Priority) String() string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityLow:
		return "low"
	}
	return "medium"
}

// Command-set element tags (group 0000).
const (
	tagCommandGroupLength        uint32 = 0x00000000
	tagAffectedSOPClassUID       uint32 = 0x00000002
	tagRequestedSOPClassUID      uint32 = 0x00000003
	tagCommandField              uint32 = 0x00000100
	tagMessageID                 uint32 = 0x00000110
	tagMessageIDBeingRespondedTo uint32 = 0x00000120
	tagMoveDestination           uint32 = 0x00000600
	tagPriority                  uint32 = 0x00000700
	tagCommandDataSetType        uint32 = 0x00000800
	tagStatus                    uint32 = 0x00000900
	tagErrorComment              uint32 = 0x00000902
	tagAffectedSOPInstanceUID    uint32 = 0x00001000
	tagRequestedSOPInstanceUID   uint32 = 0x00001001
	tagMoveOriginatorAE          uint32 = 0x00001030
	tagMoveOriginatorMessageID   uint32 = 0x00001031
)

// Command is a DIMSE command set (PS3.7 9.3 and 10.3). Fields a message
// does not use are zero and not encoded.
type Command struct {
	CommandField              uint16
	MessageID                 uint16
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	RequestedSOPClassUID      string
	AffectedSOPInstanceUID    string
	RequestedSOPInstanceUID   string
	MoveDestination           string
	Priority                  Priority
	HasDataSet                bool
	Status                    uint16
	ErrorComment              string
	MoveOriginatorAE          string
	MoveOriginatorMessageID   uint16

	seen uint32 // required fields present when decoded (fieldCommandField, fieldDataSetType)
}

// Required fields, recorded in Command.seen as they are decoded.
const (
	fieldCommandField uint32 = 1 << iota
	fieldDataSetType
)

// IsResponse reports whether the command is a response (bit 15 set).
func (c *Command) IsResponse() bool { return c.CommandField&responseBit != 0 }

// EncodeCommand appends the Implicit VR Little Endian encoding of c,
// group length first and elements in ascending tag order (PS3.7 6.3.1).
func EncodeCommand(dst []byte, c *Command) []byte {
	start := len(dst)
	dst = appendCmdUint32(dst, tagCommandGroupLength, 0) // patched below
	body := len(dst)
	dst = appendCmdUID(dst, tagAffectedSOPClassUID, c.AffectedSOPClassUID)
	dst = appendCmdUID(dst, tagRequestedSOPClassUID, c.RequestedSOPClassUID)
	dst = appendCmdUint16(dst, tagCommandField, c.CommandField)
	if c.IsResponse() {
		dst = appendCmdUint16(dst, tagMessageIDBeingRespondedTo, c.MessageIDBeingRespondedTo)
	} else {
		dst = appendCmdUint16(dst, tagMessageID, c.MessageID)
	}
	dst = appendCmdString(dst, tagMoveDestination, c.MoveDestination, ' ')
	if !c.IsResponse() && (c.CommandField == CStoreRQ || c.CommandField == CFindRQ ||
		c.CommandField == CMoveRQ || c.CommandField == CGetRQ) {
		dst = appendCmdUint16(dst, tagPriority, uint16(c.Priority))
	}
	dsType := commandNoDataSet
	if c.HasDataSet {
		dsType = 0x0000
	}
	dst = appendCmdUint16(dst, tagCommandDataSetType, dsType)
	if c.IsResponse() {
		dst = appendCmdUint16(dst, tagStatus, c.Status)
	}
	if c.ErrorComment != "" {
		comment := c.ErrorComment
		if len(comment) > 64 { // LO is at most 64 characters (PS3.5 6.2)
			comment = comment[:64]
		}
		dst = appendCmdString(dst, tagErrorComment, comment, ' ')
	}
	dst = appendCmdUID(dst, tagAffectedSOPInstanceUID, c.AffectedSOPInstanceUID)
	dst = appendCmdUID(dst, tagRequestedSOPInstanceUID, c.RequestedSOPInstanceUID)
	dst = appendCmdString(dst, tagMoveOriginatorAE, c.MoveOriginatorAE, ' ')
	if c.MoveOriginatorMessageID != 0 {
		dst = appendCmdUint16(dst, tagMoveOriginatorMessageID, c.MoveOriginatorMessageID)
	}
	binary.LittleEndian.PutUint32(dst[start+8:], uint32(len(dst)-body))
	return dst
}

func appendCmdHeader(dst []byte, tag uint32, n int) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(tag>>16))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(tag))
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

func appendCmdUint16(dst []byte, tag uint32, v uint16) []byte {
	return binary.LittleEndian.AppendUint16(appendCmdHeader(dst, tag, 2), v)
}

func appendCmdUint32(dst []byte, tag uint32, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(appendCmdHeader(dst, tag, 4), v)
}

// appendCmdString appends a string element padded to even length with pad
// (NUL for UI, space for other string VRs, PS3.5 6.2). Empty values are
// omitted.
func appendCmdString(dst []byte, tag uint32, v string, pad byte) []byte {
	if v == "" {
		return dst
	}
	n := len(v) + len(v)%2
	dst = appendCmdHeader(dst, tag, n)
	dst = append(dst, v...)
	if len(v)%2 == 1 {
		dst = append(dst, pad)
	}
	return dst
}

func appendCmdUID(dst []byte, tag uint32, v string) []byte { return appendCmdString(dst, tag, v, 0) }

// DecodeCommand decodes an Implicit VR Little Endian command set. Unknown
// group 0000 elements are skipped; elements of other groups, truncated
// elements and a missing Command Field are errors.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > maxCommandLength {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformedCommand, len(b), maxCommandLength)
	}
	c := &Command{}
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("%w: truncated element header at offset %d", ErrMalformedCommand, off)
		}
		tag := uint32(binary.LittleEndian.Uint16(b[off:]))<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:]))
		n := binary.LittleEndian.Uint32(b[off+4:])
		off += 8
		if tag>>16 != 0 {
			return nil, fmt.Errorf("%w: element (%04x,%04x) outside group 0000", ErrMalformedCommand, tag>>16, tag&0xffff)
		}
		if uint64(n) > uint64(len(b)-off) {
			return nil, fmt.Errorf("%w: element (0000,%04x) length %d exceeds the command", ErrMalformedCommand, tag&0xffff, n)
		}
		v := b[off : off+int(n)]
		off += int(n)
		if err := c.set(tag, v); err != nil {
			return nil, err
		}
	}
	if c.seen&fieldCommandField == 0 {
		return nil, fmt.Errorf("%w: no Command Field (0000,0100)", ErrMalformedCommand)
	}
	if c.seen&fieldDataSetType == 0 {
		return nil, fmt.Errorf("%w: no Command Data Set Type (0000,0800)", ErrMalformedCommand)
	}
	return c, nil
}

func (c *Command) set(tag uint32, v []byte) error {
	u16 := func(field uint32) (uint16, error) {
		if len(v) != 2 {
			return 0, fmt.Errorf("%w: element (0000,%04x) has length %d, want 2", ErrMalformedCommand, tag&0xffff, len(v))
		}
		c.seen |= field
		return binary.LittleEndian.Uint16(v), nil
	}
	str := func() string { return strings.Trim(string(v), " \x00") }
	var err error
	switch tag {
	case tagAffectedSOPClassUID:
		c.AffectedSOPClassUID = str()
	case tagRequestedSOPClassUID:
		c.RequestedSOPClassUID = str()
	case tagCommandField:
		c.CommandField, err = u16(fieldCommandField)
	case tagMessageID:
		c.MessageID, err = u16(0)
	case tagMessageIDBeingRespondedTo:
		c.MessageIDBeingRespondedTo, err = u16(0)
	case tagMoveDestination:
		c.MoveDestination = str()
	case tagPriority:
		var p uint16
		p, err = u16(0)
		c.Priority = Priority(p)
	case tagCommandDataSetType:
		var t uint16
		t, err = u16(fieldDataSetType)
		c.HasDataSet = t != commandNoDataSet
	case tagStatus:
		c.Status, err = u16(0)
	case tagErrorComment:
		c.ErrorComment = str()
	case tagAffectedSOPInstanceUID:
		c.AffectedSOPInstanceUID = str()
	case tagRequestedSOPInstanceUID:
		c.RequestedSOPInstanceUID = str()
	case tagMoveOriginatorAE:
		c.MoveOriginatorAE = str()
	case tagMoveOriginatorMessageID:
		c.MoveOriginatorMessageID, err = u16(0)
	}
	return err
}
