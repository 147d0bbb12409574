package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/radgate/radgate/store"
)

// MLLP (HL7 v2 Minimal Lower Layer Protocol, HL7 v2.5 Appendix C): each
// message is framed as a start block, the message, and an end block
// followed by a carriage return.
const (
	mllpStart = 0x0B
	mllpEnd   = 0x1C
	mllpCR    = 0x0D
)

// Limits of an MLLP exchange.
const (
	// mllpAckTimeout bounds the wait for a message's ACK (and the dial).
	mllpAckTimeout = 30 * time.Second
	// mllpMaxAck is the largest ACK read; a longer frame is a broken peer.
	mllpMaxAck = 1 << 20
)

// ParseMLLP returns the Sender for an mllp://HOST:PORT destination (an HL7
// v2 receiver, a RIS), and refuses any other scheme: what the worklist's
// HL7 destinations are checked with.
func ParseMLLP(dest string) (Sender, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrDestination, dest, err)
	}
	if u.Scheme != "mllp" || u.User != nil || u.Hostname() == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q: want mllp://HOST:PORT", ErrDestination, dest)
	}
	return &mllpSender{addr: net.JoinHostPort(u.Hostname(), u.Port()), timeout: mllpAckTimeout}, nil
}

// mllpSender sends HL7 v2 messages over one TCP connection per batch,
// each framed in MLLP and answered by an original-mode or enhanced-mode
// ACK before the next is sent. The receiver's answer (MSA-1, HL7 Table
// 0008) decides: AA and CA are delivered; AE and CE (an application or
// commit error) are retried; AR and CR (rejected) are dead at once.
// Delivery is at least once: a message whose ACK is lost is sent again,
// and the receiver recognises it by its MSH-10 message control ID.
type mllpSender struct {
	addr    string
	timeout time.Duration
}

// ErrMLLPAck is a malformed ACK, or one that does not answer the message sent.
var ErrMLLPAck = errors.New("delivery: bad HL7 ACK")

// MLLPAck is the part of an HL7 ACK the sender reads: MSA-1, MSA-2, MSA-3
// (and ERR's text when MSA-3 is empty).
type MLLPAck struct {
	Code      string // AA, AE, AR, CA, CE, CR
	ControlID string // MSA-2: the MSH-10 of the message answered
	Text      string
}

func (s *mllpSender) Send(ctx context.Context, batch []store.Delivery) []error {
	errs := make([]error, len(batch))
	ids := make([]string, len(batch))
	n := 0
	for i, d := range batch {
		id, err := controlID(d.Payload)
		if err != nil {
			errs[i] = fmt.Errorf("%w: payload is not an HL7 v2 message: %v", ErrPermanent, err)
			continue
		}
		ids[i] = id
		n++
	}
	if n == 0 {
		return errs
	}
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", s.addr)
	cancel()
	if err != nil {
		err = fmt.Errorf("delivery: MLLP %s: %w", s.addr, err)
		for i := range errs {
			errs[i] = cmpErr(errs[i], err)
		}
		return errs
	}
	defer conn.Close()
	// Closing the connection when ctx ends unblocks a read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReader(conn)
	var broken error
	for i, d := range batch {
		if errs[i] != nil {
			continue
		}
		if broken == nil && ctx.Err() != nil {
			broken = fmt.Errorf("delivery: MLLP %s: %w", s.addr, ctx.Err())
		}
		if broken != nil {
			errs[i] = broken
			continue
		}
		ack, err := s.exchange(conn, r, d.Payload)
		if err == nil && ack.ControlID != ids[i] {
			err = fmt.Errorf("%w: MSA-2 %q answers another message than %q", ErrMLLPAck, ack.ControlID, ids[i])
		}
		if err != nil {
			// The stream may be out of step: nothing more on it.
			errs[i], broken = fmt.Errorf("delivery: MLLP %s: %w", s.addr, err), fmt.Errorf("delivery: MLLP %s: connection given up after an earlier failure", s.addr)
			continue
		}
		errs[i] = ack.Err()
	}
	return errs
}

// exchange sends one framed message and reads its ACK.
func (s *mllpSender) exchange(conn net.Conn, r *bufio.Reader, msg []byte) (MLLPAck, error) {
	_ = conn.SetDeadline(time.Now().Add(s.timeout))
	frame := make([]byte, 0, len(msg)+3)
	frame = append(frame, mllpStart)
	frame = append(frame, msg...)
	frame = append(frame, mllpEnd, mllpCR)
	if _, err := conn.Write(frame); err != nil {
		return MLLPAck{}, err
	}
	b, err := readMLLPFrame(r, mllpMaxAck)
	if err != nil {
		return MLLPAck{}, err
	}
	return ParseMLLPAck(b)
}

// Err is the outcome the ACK says: nil when accepted, ErrPermanent when
// rejected, a retryable error when the receiver failed.
func (a MLLPAck) Err() error {
	why := ""
	if a.Text != "" {
		why = ": " + a.Text
	}
	switch a.Code {
	case "AA", "CA":
		return nil
	case "AR", "CR":
		return fmt.Errorf("%w: HL7 receiver rejected %s (%s)%s", ErrPermanent, a.ControlID, a.Code, why)
	}
	return fmt.Errorf("delivery: HL7 receiver failed on %s (%s)%s", a.ControlID, a.Code, why)
}

// readMLLPFrame reads one MLLP frame's content: bytes before the start
// block are skipped (HL7 Appendix C allows none, but a stray CR or LF
// between frames is common), the end block must be followed by CR.
func readMLLPFrame(r *bufio.Reader, limit int) ([]byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == mllpStart {
			break
		}
		if c != '\r' && c != '\n' {
			return nil, fmt.Errorf("%w: byte 0x%02X before the MLLP start block", ErrMLLPAck, c)
		}
	}
	var buf bytes.Buffer
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: connection closed inside an MLLP frame", ErrMLLPAck)
		}
		if err != nil {
			return nil, err
		}
		switch c {
		case mllpStart:
			return nil, fmt.Errorf("%w: MLLP start block inside a frame", ErrMLLPAck)
		case mllpEnd:
			if c, err = r.ReadByte(); err != nil || c != mllpCR {
				return nil, fmt.Errorf("%w: MLLP end block not followed by CR", ErrMLLPAck)
			}
			return buf.Bytes(), nil
		}
		if buf.Len() >= limit {
			return nil, fmt.Errorf("%w: MLLP frame over %d bytes", ErrMLLPAck, limit)
		}
		buf.WriteByte(c)
	}
}

// segments splits an HL7 v2 message into its segments (CR-terminated;
// LF and CRLF are tolerated), empty ones dropped.
func segments(msg []byte) []string {
	s := strings.ReplaceAll(string(msg), "\r\n", "\r")
	s = strings.ReplaceAll(s, "\n", "\r")
	var out []string
	for _, seg := range strings.Split(s, "\r") {
		if seg != "" {
			out = append(out, seg)
		}
	}
	return out
}

// msh reads a message's MSH: its field separator and the fields after it
// (fields[0] is MSH-2, the encoding characters, fields[n-1] is MSH-(n+1)).
func msh(segs []string) (sep byte, fields []string, err error) {
	if len(segs) == 0 || len(segs[0]) < 8 || !strings.HasPrefix(segs[0], "MSH") {
		return 0, nil, errors.New("no MSH segment first")
	}
	sep = segs[0][3]
	if sep == '\r' || sep == '\n' || (sep >= 'A' && sep <= 'Z') || (sep >= '0' && sep <= '9') {
		return 0, nil, fmt.Errorf("field separator %q", sep)
	}
	return sep, strings.Split(segs[0][4:], string(sep)), nil
}

// controlID is a message's MSH-10.
func controlID(msg []byte) (string, error) {
	_, f, err := msh(segments(msg))
	if err != nil {
		return "", err
	}
	if len(f) < 9 || f[8] == "" {
		return "", errors.New("no MSH-10 message control ID")
	}
	return f[8], nil
}

// ParseMLLPAck reads an ACK (the content of one MLLP frame): MSH, then
// MSA with MSA-1 one of HL7 Table 0008's codes and MSA-2 the control ID
// of the message it answers.
func ParseMLLPAck(b []byte) (MLLPAck, error) {
	segs := segments(b)
	sep, _, err := msh(segs)
	if err != nil {
		return MLLPAck{}, fmt.Errorf("%w: %v", ErrMLLPAck, err)
	}
	var ack MLLPAck
	found := false
	for _, seg := range segs[1:] {
		f := strings.Split(seg, string(sep))
		switch f[0] {
		case "MSA":
			if found {
				return MLLPAck{}, fmt.Errorf("%w: two MSA segments", ErrMLLPAck)
			}
			found = true
			if len(f) < 3 {
				return MLLPAck{}, fmt.Errorf("%w: MSA without MSA-2", ErrMLLPAck)
			}
			ack.Code, ack.ControlID = strings.ToUpper(strings.TrimSpace(f[1])), f[2]
			if len(f) > 3 {
				ack.Text = f[3]
			}
		case "ERR":
			// HL7 v2.5 ERR-8 is the user message; v2.3's ERR-1 a code.
			if ack.Text == "" && len(f) > 8 {
				ack.Text = f[8]
			}
		}
	}
	if !found {
		return MLLPAck{}, fmt.Errorf("%w: no MSA segment", ErrMLLPAck)
	}
	switch ack.Code {
	case "AA", "AE", "AR", "CA", "CE", "CR":
	default:
		return MLLPAck{}, fmt.Errorf("%w: MSA-1 %q is not an acknowledgment code", ErrMLLPAck, ack.Code)
	}
	if len(ack.Text) > 200 {
		ack.Text = ack.Text[:200]
	}
	return ack, nil
}
