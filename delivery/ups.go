package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/radgate/radgate/store"
)

// upsTimeout bounds one UPS-RS request.
const upsTimeout = 30 * time.Second

// UPSSender keeps an external UPS-RS worklist manager's workitems in step
// with radgate's: each delivery is a workitem's data set as it is after a
// change (worklist.UPSSink), created there when new (POST
// /workitems?{uid}) and otherwise updated (POST /workitems/{uid}: its
// priority, label, comment and the rest; never its state, which is the
// performer's there).
type UPSSender struct {
	base   string // the DICOMweb base URL
	client *http.Client
}

// NewUPSSender sends to the UPS-RS service at base (a DICOMweb base URL,
// its /workitems below it).
func NewUPSSender(base string) (*UPSSender, error) {
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("%w: %q: want a DICOMweb base URL, http(s)://HOST[:PORT]/PATH", ErrDestination, base)
	}
	return &UPSSender{base: strings.TrimSuffix(base, "/") + "/workitems", client: &http.Client{Timeout: upsTimeout}}, nil
}

// Send implements Sender, one workitem at a time.
func (s *UPSSender) Send(ctx context.Context, batch []store.Delivery) []error {
	errs := make([]error, len(batch))
	for i, d := range batch {
		errs[i] = s.send(ctx, d)
	}
	return errs
}

// UPS attributes the create takes and the update must leave out.
const (
	keySOPClass  = "00080016"
	keySOPUID    = "00080018"
	keyState     = "00741000"
	keyTransUID  = "00081195"
	upsScheduled = "SCHEDULED"
	upsMediaJSON = "application/dicom+json"
	maxUPSAnswer = 1 << 20
)

func (s *UPSSender) send(ctx context.Context, d store.Delivery) error {
	var ds map[string]json.RawMessage
	if err := json.Unmarshal(d.Payload, &ds); err != nil {
		return fmt.Errorf("%w: payload is not a DICOM JSON data set: %v", ErrPermanent, err)
	}
	var uid struct{ Value []string }
	if json.Unmarshal(ds[keySOPUID], &uid) != nil || len(uid.Value) != 1 || uid.Value[0] == "" {
		return fmt.Errorf("%w: payload has no SOP Instance UID", ErrPermanent)
	}
	delete(ds, keyTransUID)
	create := map[string]json.RawMessage{}
	for k, v := range ds {
		create[k] = v
	}
	create[keyState] = json.RawMessage(`{"vr":"CS","Value":["` + upsScheduled + `"]}`)
	code, err := s.post(ctx, s.base+"?"+uid.Value[0], create)
	switch {
	case err != nil:
		return err
	case code == http.StatusCreated || code == http.StatusOK:
		return nil
	case code != http.StatusConflict:
		return classify("create", code)
	}
	// It exists there: update it.
	for _, k := range []string{keySOPClass, keySOPUID, keyState} {
		delete(ds, k)
	}
	code, err = s.post(ctx, s.base+"/"+uid.Value[0], ds)
	switch {
	case err != nil:
		return err
	case code == http.StatusOK || code == http.StatusNoContent:
		return nil
	}
	return classify("update", code)
}

// classify: the server's trouble is retried, a refusal is not.
func classify(what string, code int) error {
	if code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests {
		return fmt.Errorf("delivery: UPS-RS %s answered %d", what, code)
	}
	return fmt.Errorf("%w: UPS-RS %s answered %d", ErrPermanent, what, code)
}

func (s *UPSSender) post(ctx context.Context, url string, body map[string]json.RawMessage) (int, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	req.Header.Set("Content-Type", upsMediaJSON)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("delivery: UPS-RS: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUPSAnswer))
	return resp.StatusCode, nil
}
