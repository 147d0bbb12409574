package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

const testWADO = "http://radgate.test:8080/dicomweb"

// headCT ingests a 4-slice head CT phantom with a hemorrhage into a fresh
// store and returns the study's instances as the index has them.
func headCT(t testing.TB) []store.Instance {
	t.Helper()
	ctx := context.Background()
	files, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 1, Slices: 4})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), SegmentSize: 8 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var studyUID string
	for _, f := range files {
		studyUID = peertest.Ingest(t, st, f.Data, store.Incoming{Source: "dimse"}).StudyInstanceUID
	}
	if _, err := st.CountInstances(ctx); err != nil {
		t.Fatal(err)
	}
	ins, err := st.Work().StudyInstances(ctx, studyUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 4 {
		t.Fatalf("store has %d instances of the phantom study, want 4", len(ins))
	}
	return ins
}

func ichResult(ins []store.Instance) *inference.Result {
	return &inference.Result{Model: "ct-ich", Version: "1.0.0", Task: "classification", SHA256: strings.Repeat("ab", 32),
		StudyInstanceUID: ins[0].StudyInstanceUID, SeriesInstanceUID: ins[0].SeriesInstanceUID, Priority: "STAT",
		Findings: []inference.Finding{{Label: "hemorrhage", Concept: models.Concept{Scheme: "SCT", Code: "1386000", Meaning: "Intracranial hemorrhage"},
			Probability: 0.93, Threshold: 0.5, Positive: true}}}
}

var ichAlgorithm = Algorithm{Name: "ct-ich", Version: "1.0.0", Manufacturer: "radgate", SHA256: strings.Repeat("ab", 32), TrainedOnPhantoms: true}

// syncBuffer is a log sink the test reads after the client wrote to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newClient(t testing.TB, cfg Config) (*Client, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	t.Cleanup(func() { peertest.NoPHI(t, "FHIR client log", logs.String()) })
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

// noPHI fails t when s carries the study's patient data.
func noPHI(t testing.TB, what, s string, in store.Instance) {
	t.Helper()
	for _, v := range []string{in.PatientID, in.PatientName, in.PatientBirthDate} {
		if v = strings.TrimSpace(v); v != "" && strings.Contains(s, v) {
			t.Errorf("%s carries patient data %q:\n%s", what, v, s)
		}
	}
}

// server is the test's FHIR API client.
type server struct {
	t    testing.TB
	base string
}

func (s server) do(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+"/"+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatalf("%s %s: %s: %v", method, path, resp.Status, err)
	}
	return resp.StatusCode, out
}

func (s server) get(path string) map[string]any {
	s.t.Helper()
	status, r := s.do(http.MethodGet, path, nil)
	if status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %v", path, status, r)
	}
	return r
}

// search returns the resources of a search.
func (s server) search(resourceType string, q url.Values) []map[string]any {
	s.t.Helper()
	b := s.get(resourceType + "?" + q.Encode())
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

// byIdentifier returns the one resource with the identifier.
func (s server) byIdentifier(resourceType string, id ident) map[string]any {
	s.t.Helper()
	rs := s.search(resourceType, url.Values{"identifier": {id.system + "|" + id.value}})
	if len(rs) != 1 {
		s.t.Fatalf("%s with identifier %s: %d resources, want exactly 1", resourceType, id.system, len(rs))
	}
	return rs[0]
}

// follow GETs a reference ("Type/id") and checks its type.
func (s server) follow(ref any, resourceType string) map[string]any {
	s.t.Helper()
	r, _ := ref.(map[string]any)["reference"].(string)
	if !strings.HasPrefix(r, resourceType+"/") {
		s.t.Fatalf("reference %q, want a %s", r, resourceType)
	}
	return s.get(r)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeliverMedplum writes a study and its AI report to Medplum's
// validating router through the outbox Sender, retries it, and checks each
// resource is there once, its references resolve, and npm fhir validates
// everything radgate wrote.
func TestDeliverMedplum(t *testing.T) {
	ins := headCT(t)
	srv := server{t, peertest.StartFHIR(t, 0).URL()}
	c, logs := newClient(t, Config{BaseURL: srv.base, UnknownPatient: PatientCreate, Auth: Bearer("test-token")})
	ctx := context.Background()

	sn, err := StudyNotification(ins, testWADO)
	if err != nil {
		t.Fatal(err)
	}
	rn, err := ReportNotification(ins, ichResult(ins), ichAlgorithm, 1, testWADO)
	if err != nil {
		t.Fatal(err)
	}
	// Through the Sender, as the outbox stores and sends them, with two
	// payloads it must refuse for good in between: errors stay aligned.
	batch := []store.Delivery{
		{ID: 1, Kind: KindImagingStudy, Payload: mustJSON(t, sn)},
		{ID: 2, Kind: KindReport, Payload: []byte("{not json")},
		{ID: 3, Kind: KindReport, Payload: mustJSON(t, sn)},
		{ID: 4, Kind: KindReport, Payload: mustJSON(t, rn)},
	}
	errs := c.Sender().Send(ctx, batch)
	if len(errs) != len(batch) {
		t.Fatalf("Send: %d errors for %d deliveries", len(errs), len(batch))
	}
	for i, wantPermanent := range []bool{false, true, true, false} {
		if got := errors.Is(errs[i], delivery.ErrPermanent); got != wantPermanent || (!wantPermanent && errs[i] != nil) {
			t.Errorf("delivery %d: error %v, want permanent=%v", batch[i].ID, errs[i], wantPermanent)
		}
	}
	// A retry (the outbox after a lost answer) writes nothing new.
	for range 2 {
		if err := c.Deliver(ctx, rn); err != nil {
			t.Fatalf("Deliver again: %v", err)
		}
	}

	studyUID := ins[0].StudyInstanceUID
	for _, r := range []struct {
		typ string
		id  ident
	}{
		{"Endpoint", endpointIdent(testWADO)},
		{"Patient", ident{DefaultPatientSystem, strings.TrimSpace(ins[0].PatientID)}},
		{"ImagingStudy", studyIdent(studyUID)},
		{"Device", deviceIdent(ichAlgorithm)},
		{"Observation", observationIdent(rn, "hemorrhage")},
		{"DiagnosticReport", reportIdent(rn)},
	} {
		srv.byIdentifier(r.typ, r.id)
		if n := len(srv.search(r.typ, nil)); n != 1 {
			t.Errorf("%d %s resources on the server, want 1", n, r.typ)
		}
	}

	report := srv.byIdentifier("DiagnosticReport", reportIdent(rn))
	if report["status"] != "preliminary" || !strings.Contains(report["conclusion"].(string), "Intracranial hemorrhage (probability 0.93") ||
		!strings.Contains(report["conclusion"].(string), Disclaimer) {
		t.Errorf("DiagnosticReport status %v, conclusion %q", report["status"], report["conclusion"])
	}
	results := report["result"].([]any)
	if len(results) != 1 {
		t.Fatalf("DiagnosticReport.result has %d references, want 1", len(results))
	}
	obs := srv.follow(results[0], "Observation")
	code := obs["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)
	if code["system"] != sysSCT || code["code"] != "1386000" {
		t.Errorf("Observation.code %v", code)
	}
	if interp := obs["interpretation"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any); interp["code"] != "POS" {
		t.Errorf("Observation.interpretation %v", interp)
	}
	device := srv.follow(obs["device"], "Device")
	if notes, _ := device["note"].([]any); len(notes) != 1 {
		t.Errorf("Device of a phantom-trained model has notes %v", device["note"])
	}
	study := srv.follow(report["imagingStudy"].([]any)[0], "ImagingStudy")
	if study["id"] != srv.follow(obs["derivedFrom"].([]any)[0], "ImagingStudy")["id"] {
		t.Error("Observation.derivedFrom and DiagnosticReport.imagingStudy differ")
	}
	patient := srv.follow(study["subject"], "Patient")
	if report["subject"].(map[string]any)["reference"] != "Patient/"+patient["id"].(string) {
		t.Errorf("DiagnosticReport.subject %v, ImagingStudy.subject Patient/%v", report["subject"], patient["id"])
	}
	endpoint := srv.follow(study["endpoint"].([]any)[0], "Endpoint")
	if endpoint["address"] != testWADO {
		t.Errorf("Endpoint.address %v", endpoint["address"])
	}
	if study["numberOfSeries"] != 1.0 || study["numberOfInstances"] != 4.0 {
		t.Errorf("ImagingStudy has %v series, %v instances; want 1, 4", study["numberOfSeries"], study["numberOfInstances"])
	}
	series := study["series"].([]any)[0].(map[string]any)
	if site := series["bodySite"].(map[string]any); site["code"] != "69536005" || series["modality"].(map[string]any)["code"] != "CT" {
		t.Errorf("series bodySite %v, modality %v", site, series["modality"])
	}
	if acc := strings.TrimSpace(ins[0].AccessionNumber); acc != "" && !strings.Contains(string(mustJSON(t, study["identifier"])), `"value":"`+acc+`"`) {
		t.Errorf("ImagingStudy identifiers %v lack the accession", study["identifier"])
	}

	var all []any
	for _, r := range []any{endpoint, patient, study, device, obs, report} {
		all = append(all, r)
	}
	peertest.ValidateFHIR(t, mustJSON(t, all))
	noPHI(t, "the client's log", logs.String(), ins[0])
}

// TestPatientDefer: with no Patient in the EHR the delivery waits
// (retriable ErrPatientUnknown); once the EHR registers the patient, the
// ImagingStudy is written against that Patient.
func TestPatientDefer(t *testing.T) {
	ins := headCT(t)
	srv := server{t, peertest.StartFHIR(t, 0).URL()}
	c, logs := newClient(t, Config{BaseURL: srv.base, UnknownPatient: PatientDefer})
	ctx := context.Background()
	n, err := StudyNotification(ins, testWADO)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Deliver(ctx, n)
	if !errors.Is(err, ErrPatientUnknown) || errors.Is(err, ErrRejected) || errors.Is(err, delivery.ErrPermanent) {
		t.Fatalf("Deliver without the Patient: %v, want a retriable ErrPatientUnknown", err)
	}
	noPHI(t, "the error", err.Error(), ins[0])
	if got := srv.search("ImagingStudy", nil); len(got) != 0 {
		t.Fatalf("%d ImagingStudy written without a Patient", len(got))
	}

	status, p := srv.do(http.MethodPost, "Patient", map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": DefaultPatientSystem, "value": strings.TrimSpace(ins[0].PatientID)}},
		"name":       []any{map[string]any{"family": "Registered"}}})
	if status != http.StatusCreated {
		t.Fatalf("POST Patient: %d %v", status, p)
	}
	if err := c.Deliver(ctx, n); err != nil {
		t.Fatalf("Deliver once the Patient exists: %v", err)
	}
	study := srv.byIdentifier("ImagingStudy", studyIdent(ins[0].StudyInstanceUID))
	if got, want := study["subject"].(map[string]any)["reference"], "Patient/"+p["id"].(string); got != want {
		t.Errorf("ImagingStudy.subject %v, want %s", got, want)
	}
	if got := srv.search("Patient", nil); len(got) != 1 {
		t.Errorf("%d Patients, want the registered one only", len(got))
	}
	peertest.ValidateFHIR(t, mustJSON(t, []any{study}))
	noPHI(t, "the client's log", logs.String(), ins[0])
}
