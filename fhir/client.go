package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/store"
)

// Sentinel errors.
var (
	// ErrRejected: the server refused a request with a 4xx other than 408
	// or 429; retrying the same payload cannot help. Every such error also
	// wraps delivery.ErrPermanent.
	ErrRejected = errors.New("fhir: request refused")
	// ErrPatientUnknown: no Patient has the study's identifier and the
	// policy is PatientDefer. Retriable: the EHR may register the patient
	// soon.
	ErrPatientUnknown = errors.New("fhir: patient is not (yet) in the EHR")
	// ErrConfig: a Config New cannot use.
	ErrConfig = errors.New("fhir: invalid configuration")
	// ErrNotification: instances or a result a notification cannot be
	// built from.
	ErrNotification = errors.New("fhir: cannot build notification")
)

// rejected is an ErrRejected error, which the outbox dead-letters
// (delivery.ErrPermanent).
func rejected(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrRejected, delivery.ErrPermanent}, args...)...)
}

// Limits.
const (
	// defaultTimeout bounds one request when Config.HTTPClient is nil.
	defaultTimeout = 30 * time.Second
	// maxResponse is the most of a response body read: resources radgate
	// writes come back small; a search answers at most a few patients.
	maxResponse = 4 << 20
	// maxErrorText bounds the server's text carried in an error: it may
	// echo submitted values (patient data), so only a little is kept.
	maxErrorText = 300
)

// Authorizer adds credentials to a request: a static bearer token
// ([Bearer]) or SMART Backend Services (smart.go).
type Authorizer interface {
	Authorize(ctx context.Context, req *http.Request) error
}

type bearer string

func (b bearer) Authorize(_ context.Context, req *http.Request) error {
	if b != "" {
		req.Header.Set("Authorization", "Bearer "+string(b))
	}
	return nil
}

// Bearer sends a static token; "" sends no Authorization header.
func Bearer(token string) Authorizer { return bearer(token) }

// PatientPolicy is what to do when no Patient has the study's identifier.
type PatientPolicy string

// Patient policies.
const (
	// PatientCreate conditionally creates the Patient (POST with
	// If-None-Exist) from the DICOM demographics.
	PatientCreate PatientPolicy = "create"
	// PatientDefer fails with the retriable ErrPatientUnknown. The default.
	PatientDefer PatientPolicy = "defer"
)

// Config configures a Client.
type Config struct {
	BaseURL string     // FHIR R4 base, e.g. http://127.0.0.1:18060/fhir
	Auth    Authorizer // nil: none
	// PatientSystem is the identifier system of the DICOM Patient ID
	// (DefaultPatientSystem, "urn:radgate:patient-id", if empty).
	PatientSystem  string
	UnknownPatient PatientPolicy // "" is PatientDefer
	HTTPClient     *http.Client  // nil: one with a 30 s timeout
	Log            *slog.Logger  // nil: discard
}

// Client writes notifications to one FHIR server.
type Client struct {
	base   string
	auth   Authorizer
	system string
	policy PatientPolicy
	http   *http.Client
	log    *slog.Logger
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: base URL %q: want http(s)://HOST[:PORT]/PATH", ErrConfig, cfg.BaseURL)
	}
	c := &Client{base: strings.TrimSuffix(u.String(), "/"), auth: cfg.Auth, system: cfg.PatientSystem,
		policy: cfg.UnknownPatient, http: cfg.HTTPClient, log: cfg.Log}
	switch c.policy {
	case "":
		c.policy = PatientDefer
	case PatientCreate, PatientDefer:
	default:
		return nil, fmt.Errorf("%w: unknown patient policy %q (want %q or %q)", ErrConfig, c.policy, PatientCreate, PatientDefer)
	}
	if c.system == "" {
		c.system = DefaultPatientSystem
	}
	if c.auth == nil {
		c.auth = Bearer("")
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: defaultTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Deliver writes a notification's resources: the Endpoint, the Patient
// (found by identifier, or created per the policy), the ImagingStudy and,
// for a report, the Device, one Observation per finding and the
// DiagnosticReport. Each is a conditional update on its identifier, so
// delivering again replaces rather than duplicates.
func (c *Client) Deliver(ctx context.Context, n Notification) error {
	if err := n.check(); err != nil {
		return err
	}
	study := dcm.UIDRef(n.Study.UID)
	endpointID, err := c.put(ctx, "Endpoint", endpointIdent(n.Endpoint), endpointResource(n))
	if err != nil {
		return err
	}
	patientID, err := c.patient(ctx, n)
	if err != nil {
		return err
	}
	studyID, err := c.put(ctx, "ImagingStudy", studyIdent(n.Study.UID), imagingStudyResource(n, patientID, endpointID))
	if err != nil {
		return err
	}
	if n.Kind == notifyStudy {
		c.log.Debug("fhir: imaging study written", "study", study, "imaging_study", studyID)
		return nil
	}
	a := n.Report.Algorithm
	deviceID, err := c.put(ctx, "Device", deviceIdent(a), deviceResource(a))
	if err != nil {
		return err
	}
	obs := make([]string, len(n.Report.Findings))
	for i, f := range n.Report.Findings {
		if obs[i], err = c.put(ctx, "Observation", observationIdent(n, f.Label), observationResource(n, f, patientID, deviceID, studyID)); err != nil {
			return err
		}
	}
	reportID, err := c.put(ctx, "DiagnosticReport", reportIdent(n), reportResource(n, patientID, studyID, obs))
	if err != nil {
		return err
	}
	c.log.Debug("fhir: report written", "study", study, "model", a.Name, "version", a.Version,
		"revision", n.Report.Revision, "diagnostic_report", reportID, "observations", len(obs))
	return nil
}

// check rejects a payload Deliver cannot write, for good.
func (n Notification) check() error {
	bad := func(why string) error {
		return rejected("notification %s", why)
	}
	switch {
	case n.Kind != notifyStudy && n.Kind != notifyReport:
		return bad(fmt.Sprintf("of unknown kind %q", n.Kind))
	case n.Study.UID == "" || n.Patient.ID == "" || n.Endpoint == "":
		return bad("without study, patient identifier or endpoint")
	case n.Kind == notifyReport && (n.Report == nil || len(n.Report.Findings) == 0):
		return bad("of kind report without findings")
	}
	return nil
}

// patient returns the id of the Patient with the study's identifier,
// creating it under PatientCreate.
func (c *Client) patient(ctx context.Context, n Notification) (string, error) {
	id := ident{c.system, n.Patient.ID}
	var bundle struct {
		Entry []struct {
			Search   struct{ Mode string } `json:"search"`
			Resource resourceID            `json:"resource"`
		} `json:"entry"`
	}
	if err := c.do(ctx, http.MethodGet, "Patient", id.query(), nil, nil, &bundle); err != nil {
		return "", err
	}
	var ids []string
	for _, e := range bundle.Entry {
		if e.Resource.ResourceType == "Patient" && e.Search.Mode != "include" && e.Resource.ID != "" {
			ids = append(ids, e.Resource.ID)
		}
	}
	switch {
	case len(ids) == 1:
		return ids[0], nil
	case len(ids) > 1:
		// The EHR must merge them; retrying may find it done.
		return "", fmt.Errorf("fhir: %d patients have the identifier of study %s", len(ids), dcm.UIDRef(n.Study.UID))
	case c.policy != PatientCreate:
		return "", fmt.Errorf("%w: study %s", ErrPatientUnknown, dcm.UIDRef(n.Study.UID))
	}
	var created resourceID
	hdr := http.Header{"If-None-Exist": {id.query()}}
	if err := c.do(ctx, http.MethodPost, "Patient", "", hdr, patientResource(n.Patient, c.system), &created); err != nil {
		return "", err
	}
	if created.ID == "" {
		return "", fmt.Errorf("fhir: POST Patient: the answer has no id")
	}
	c.log.Info("fhir: patient created from DICOM demographics", "study", dcm.UIDRef(n.Study.UID), "patient", created.ID)
	return created.ID, nil
}

// resourceID is what Deliver reads back from a written resource.
type resourceID struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

// put is a conditional update (FHIR R4 3.1.0.4.3): the server updates the
// one resource with the identifier, or creates it; it returns the id.
func (c *Client) put(ctx context.Context, resourceType string, id ident, resource obj) (string, error) {
	var out resourceID
	if err := c.do(ctx, http.MethodPut, resourceType, id.query(), nil, resource, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("fhir: PUT %s: the answer has no id", resourceType)
	}
	return out.ID, nil
}

// invalidator is an Authorizer with a cached credential the server may
// have revoked (SMARTAuthorizer).
type invalidator interface{ Invalidate() }

// do sends one request and decodes a 2xx answer into out. A 401 to a
// cached credential drops it and tries once more with a fresh one. Errors
// name the method and resource type, never the URL (its query holds
// identifiers) nor the body.
func (c *Client) do(ctx context.Context, method, resourceType, query string, hdr http.Header, body any, out any) error {
	op := method + " " + resourceType
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return rejected("%s: %v", op, err)
		}
	}
	u := c.base + "/" + resourceType
	if query != "" {
		u += "?" + encodeQuery(query)
	}
	status, b, err := c.roundTrip(ctx, op, method, u, hdr, payload)
	if inv, ok := c.auth.(invalidator); ok && err == nil && status == http.StatusUnauthorized {
		inv.Invalidate()
		status, b, err = c.roundTrip(ctx, op, method, u, hdr, payload)
	}
	if err != nil {
		return err
	}
	if status >= 200 && status < 300 {
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("fhir: %s: %d answer is not FHIR JSON: %v", op, status, err)
			}
		}
		return nil
	}
	msg := fmt.Sprintf("%s: %d %s", op, status, http.StatusText(status))
	if o := outcomeText(b); o != "" {
		msg += ": " + o
	}
	if status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
		return rejected("%s", msg)
	}
	return errors.New("fhir: " + msg) // 5xx, 408, 429: retriable
}

// roundTrip sends one request and reads the answer.
func (c *Client) roundTrip(ctx context.Context, op, method, u string, hdr http.Header, payload []byte) (int, []byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, rejected("%s: %v", op, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/fhir+json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if err := c.auth.Authorize(ctx, req); err != nil {
		return 0, nil, fmt.Errorf("fhir: %s: authorize: %w", op, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return 0, nil, fmt.Errorf("fhir: %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, fmt.Errorf("fhir: %s: reading the answer: %w", op, err)
	}
	return resp.StatusCode, b, nil
}

// encodeQuery percent-encodes a search's name and value (name=value) for
// the URL; the server decodes them before it reads FHIR's '|' and '\'.
func encodeQuery(q string) string {
	name, value, _ := strings.Cut(q, "=")
	return url.QueryEscape(name) + "=" + url.QueryEscape(value)
}

// outcomeText is the diagnostics (or details, or code) of an
// OperationOutcome's issues, cut to maxErrorText; "" for any other body,
// which is not quoted at all.
func outcomeText(b []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string                `json:"severity"`
			Code        string                `json:"code"`
			Diagnostics string                `json:"diagnostics"`
			Details     struct{ Text string } `json:"details"`
			Expression  []string              `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return ""
	}
	var parts []string
	for _, is := range oo.Issue {
		t := is.Diagnostics
		if t == "" {
			t = is.Details.Text
		}
		if t == "" {
			t = is.Code
		}
		if len(is.Expression) > 0 {
			t += " at " + strings.Join(is.Expression, ", ")
		}
		parts = append(parts, is.Severity+": "+t)
	}
	return truncate(strings.Join(parts, "; "), maxErrorText)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Sender adapts the Client to the outbox: each Delivery.Payload is a JSON
// Notification, delivered in turn.
func (c *Client) Sender() delivery.Sender { return sender{c} }

type sender struct{ c *Client }

func (s sender) Send(ctx context.Context, batch []store.Delivery) []error {
	errs := make([]error, len(batch))
	for i, d := range batch {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		var n Notification
		if err := json.Unmarshal(d.Payload, &n); err != nil {
			errs[i] = rejected("payload is not a notification: %v", err)
			continue
		}
		if want := map[string]string{KindImagingStudy: notifyStudy, KindReport: notifyReport}[d.Kind]; want != "" && want != n.Kind {
			errs[i] = rejected("outbox kind %q with a %q notification", d.Kind, n.Kind)
			continue
		}
		errs[i] = s.c.Deliver(ctx, n)
	}
	return errs
}
