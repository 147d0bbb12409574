package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/store"
)

// Sentinel errors.
var (
	// ErrDestination: a destination that cannot be parsed or whose scheme
	// is not supported.
	ErrDestination = errors.New("delivery: invalid destination")
	// ErrPermanent marks a failure that retrying cannot mend (the peer
	// does not take this SOP class at all): the delivery is dead at once.
	ErrPermanent = errors.New("delivery: refused for good")
)

// Sender delivers outbox items to one destination.
type Sender interface {
	// Send delivers a batch (one association, one connection), returning
	// one error per item, nil where it was delivered.
	Send(ctx context.Context, batch []store.Delivery) []error
}

// Parse returns the Sender for a destination: dimse://AE@HOST:PORT is a
// C-STORE SCU calling as cfg.CallingAE, dimse+tls://AE@HOST:PORT the same
// over TLS (cfg.TLS), a DICOMweb base URL a STOW-RS client,
// mllp://HOST:PORT an HL7 v2 sender over MLLP (ParseMLLP).
func Parse(dest string, cfg Config) (Sender, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrDestination, dest, err)
	}
	switch u.Scheme {
	case "dimse", "dimse+tls":
		ae := u.User.Username()
		if ae == "" || len(ae) > 16 || u.Port() == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("%w: %q: want %s://AE@HOST:PORT", ErrDestination, dest, u.Scheme)
		}
		s := &dimseSender{addr: net.JoinHostPort(u.Hostname(), u.Port()), cfg: dimse.ClientConfig{CallingAE: cfg.CallingAE, CalledAE: ae}}
		if u.Scheme == "dimse+tls" {
			if cfg.TLS == nil {
				return nil, fmt.Errorf("%w: %q: no TLS client configuration", ErrDestination, dest)
			}
			s.cfg.TLS = cfg.TLS
		}
		return s, nil
	case "http", "https":
		if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%w: %q: want a DICOMweb base URL, http(s)://HOST[:PORT]/PATH", ErrDestination, dest)
		}
		return &stowSender{url: strings.TrimSuffix(u.String(), "/") + "/studies", client: &http.Client{Timeout: stowTimeout}}, nil
	case "mllp":
		return ParseMLLP(dest)
	}
	return nil, fmt.Errorf("%w: %q: unknown scheme %q (want dimse://AE@HOST:PORT, dimse+tls://AE@HOST:PORT, a DICOMweb base URL or mllp://HOST:PORT)", ErrDestination, dest, u.Scheme)
}

// dimseSender sends a batch over one association (PS3.4 B.2: C-STORE),
// proposing each SOP class in the transfer syntax its payload is in.
type dimseSender struct {
	addr string
	cfg  dimse.ClientConfig
}

type part struct {
	ts   string
	data []byte // the data set, after the file meta
	err  error
}

func (s *dimseSender) Send(ctx context.Context, batch []store.Delivery) []error {
	errs := make([]error, len(batch))
	parts := make([]part, len(batch))
	var props []dimse.Proposal
	seen := map[[2]string]bool{}
	for i, d := range batch {
		meta, data, err := dcm.OpenPart10(bytes.NewReader(d.Payload))
		if err != nil {
			parts[i].err = fmt.Errorf("%w: payload is not a Part 10 file: %v", ErrPermanent, err)
			continue
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(data); err != nil {
			parts[i].err = fmt.Errorf("%w: payload: %v", ErrPermanent, err)
			continue
		}
		parts[i] = part{ts: meta.TransferSyntaxUID, data: buf.Bytes()}
		if k := [2]string{d.SOPClassUID, meta.TransferSyntaxUID}; !seen[k] {
			seen[k] = true
			props = append(props, dimse.Proposal{AbstractSyntax: d.SOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}})
		}
	}
	if len(props) == 0 {
		for i := range errs {
			errs[i] = parts[i].err
		}
		return errs
	}
	c, err := dimse.Dial(ctx, s.addr, s.cfg, props)
	if err != nil {
		for i := range errs {
			errs[i] = cmpErr(parts[i].err, err)
		}
		return errs
	}
	broken := error(nil)
	for i, d := range batch {
		switch {
		case parts[i].err != nil:
			errs[i] = parts[i].err
			continue
		case broken != nil:
			errs[i] = broken
			continue
		case !c.Accepts(d.SOPClassUID, parts[i].ts):
			errs[i] = fmt.Errorf("%w: %s did not accept %s in %s", ErrPermanent, s.cfg.CalledAE, dcm.UIDName(d.SOPClassUID), dcm.UIDName(parts[i].ts))
			continue
		}
		st, err := c.Store(ctx, d.SOPClassUID, d.ObjectUID, parts[i].ts, dimse.PriorityMedium, bytes.NewReader(parts[i].data))
		switch {
		case err != nil:
			errs[i], broken = err, err // the association is gone
		case !st.OK():
			errs[i] = fmt.Errorf("delivery: %s answered C-STORE with %s", s.cfg.CalledAE, st)
		}
	}
	if broken == nil {
		_ = c.Release(context.WithoutCancel(ctx))
	} else {
		c.Abort()
	}
	return errs
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Redact is a destination as logs and metrics show it: the URL without
// user information other than a DIMSE AE title, and without a query.
func Redact(dest string) string {
	u, err := url.Parse(dest)
	if err != nil {
		return "invalid"
	}
	if u.Scheme != "dimse" {
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/")
}
