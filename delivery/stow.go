package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"time"

	"github.com/radgate/radgate/store"
)

// stowTimeout bounds one STOW-RS request, body and answer.
const stowTimeout = 2 * time.Minute

// stowSender stores a batch with one STOW-RS request (PS3.18 10.5):
// multipart/related; type="application/dicom", a part per object, and
// reads which instances the origin server stored from its response.
type stowSender struct {
	url    string // the base URL + "/studies"
	client *http.Client
}

// STOW-RS response attributes (PS3.18 Table 10.5.3-2).
const (
	keyFailedSOPSequence     = "00081198"
	keyReferencedSOPSequence = "00081199"
	keyReferencedSOPInstance = "00081155"
	keyFailureReason         = "00081197"
)

func (s *stowSender) Send(ctx context.Context, batch []store.Delivery) []error {
	errs := make([]error, len(batch))
	all := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, d := range batch {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			return all(err)
		}
		w.Write(d.Payload)
	}
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, &body)
	if err != nil {
		return all(fmt.Errorf("%w: %v", ErrPermanent, err))
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return all(fmt.Errorf("delivery: STOW-RS: %w", err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return all(fmt.Errorf("delivery: STOW-RS response: %w", err))
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests:
		return all(fmt.Errorf("delivery: STOW-RS answered %s", resp.Status))
	case resp.StatusCode >= 400 && resp.StatusCode != http.StatusConflict:
		// The request itself was refused: sending it again changes nothing.
		return all(fmt.Errorf("%w: STOW-RS answered %s", ErrPermanent, resp.Status))
	}
	stored, failed, perr := stowOutcome(raw)
	for i, d := range batch {
		switch reason, bad := failed[d.ObjectUID]; {
		case stored[d.ObjectUID]:
		case bad && reason&0xFF00 == 0xA700:
			errs[i] = fmt.Errorf("delivery: STOW-RS: the origin server is out of resources (failure reason %04X)", reason)
		case bad:
			errs[i] = fmt.Errorf("%w: STOW-RS refused the instance (failure reason %04X)", ErrPermanent, reason)
		case resp.StatusCode == http.StatusOK && perr != nil:
			// 200 means every instance was stored; some servers answer
			// without a body we can read.
		default:
			errs[i] = fmt.Errorf("delivery: STOW-RS answered %s without reporting the instance", resp.Status)
		}
	}
	return errs
}

// stowOutcome reads the Referenced and Failed SOP Sequences of a STOW-RS
// response.
func stowOutcome(raw []byte) (stored map[string]bool, failed map[string]int, err error) {
	type attr struct {
		Value []json.RawMessage `json:"Value"`
	}
	var top map[string]attr
	stored, failed = map[string]bool{}, map[string]int{}
	if err := json.Unmarshal(raw, &top); err != nil {
		return stored, failed, err
	}
	items := func(key string) []map[string]attr {
		var out []map[string]attr
		for _, v := range top[key].Value {
			var it map[string]attr
			if json.Unmarshal(v, &it) == nil {
				out = append(out, it)
			}
		}
		return out
	}
	first := func(it map[string]attr, key string, v any) bool {
		a := it[key].Value
		return len(a) > 0 && json.Unmarshal(a[0], v) == nil
	}
	for _, it := range items(keyReferencedSOPSequence) {
		var uid string
		if first(it, keyReferencedSOPInstance, &uid) {
			stored[uid] = true
		}
	}
	for _, it := range items(keyFailedSOPSequence) {
		var uid string
		var reason int
		if first(it, keyReferencedSOPInstance, &uid) {
			first(it, keyFailureReason, &reason)
			failed[uid] = reason
		}
	}
	if len(stored) == 0 && len(failed) == 0 {
		return stored, failed, errors.New("delivery: STOW-RS response lists no instance")
	}
	return stored, failed, nil
}
