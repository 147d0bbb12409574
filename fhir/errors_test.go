package fhir

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/radgate/radgate/delivery"
)

// fakeNotification is a study notification that needs no store: the fault
// servers below never look at it.
func fakeNotification() Notification {
	return Notification{Kind: notifyStudy, Endpoint: testWADO,
		Patient: PatientData{ID: "PHI-PATIENT-4711", Family: "Doe"},
		Study: StudyData{UID: "1.2.3.4", Series: []SeriesData{{UID: "1.2.3.4.1", Modality: "CT",
			Instances: []InstanceData{{UID: "1.2.3.4.1.1", SOPClass: "1.2.840.10008.5.1.4.1.1.2"}}}}}}
}

// TestErrorMapping: how server faults become outbox errors. httptest stands
// in for the FHIR server here only because a real one cannot be made to
// fail on demand; everything else runs against Medplum.
func TestErrorMapping(t *testing.T) {
	outcome := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"` +
		strings.Repeat("echo PHI-PATIENT-4711 ", 40) + `"}]}`
	tests := []struct {
		name      string
		status    int
		body      string
		rejected  bool
		wantInErr string
	}{
		{"500", 500, `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","details":{"text":"database down"}}]}`, false, "database down"},
		{"503 plain", 503, "<html>busy</html>", false, "503"},
		{"408", 408, "", false, "408"},
		{"429", 429, "", false, "429"},
		{"422 outcome", 422, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"bad series","expression":["ImagingStudy.series[0]"]}]}`, true, "bad series at ImagingStudy.series[0]"},
		{"400 outcome", 400, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"structure","details":{"text":"Missing required property"}}]}`, true, "Missing required property"},
		{"400 echoing", 400, outcome, true, "echo"},
		{"404 plain", 404, "not here", true, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer hs.Close()
			c, _ := newClient(t, Config{BaseURL: hs.URL + "/fhir"})
			err := c.Deliver(context.Background(), fakeNotification())
			if err == nil {
				t.Fatal("Deliver succeeded against a failing server")
			}
			if errors.Is(err, ErrRejected) != tt.rejected || errors.Is(err, delivery.ErrPermanent) != tt.rejected {
				t.Errorf("error %q: ErrRejected %v, ErrPermanent %v; want both %v", err, errors.Is(err, ErrRejected), errors.Is(err, delivery.ErrPermanent), tt.rejected)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q lacks %q", err, tt.wantInErr)
			}
			if len(err.Error()) > maxErrorText+200 {
				t.Errorf("error is %d bytes long: the server's text is not cut", len(err.Error()))
			}
		})
	}
}

// TestNetworkErrorHasNoURL: a connection failure is retriable and does not
// quote the URL, whose query carries the patient identifier.
func TestNetworkErrorHasNoURL(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			_, _ = w.Write([]byte(`{"resourceType":"Endpoint","id":"e1"}`))
			return
		}
		// The Patient search: drop the connection.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer hs.Close()
	c, _ := newClient(t, Config{BaseURL: hs.URL + "/fhir"})
	err := c.Deliver(context.Background(), fakeNotification())
	if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, delivery.ErrPermanent) {
		t.Fatalf("Deliver over a dropped connection: %v, want a retriable error", err)
	}
	if strings.Contains(err.Error(), "PHI-PATIENT-4711") || strings.Contains(err.Error(), "identifier=") {
		t.Errorf("error quotes the request URL: %q", err)
	}
}

// countingAuth is a bearer token the server may revoke.
type countingAuth struct {
	token       atomic.Value
	invalidated atomic.Int32
}

func (a *countingAuth) Authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+a.token.Load().(string))
	return nil
}

func (a *countingAuth) Invalidate() {
	a.invalidated.Add(1)
	a.token.Store("fresh")
}

// TestUnauthorizedRenewsToken: a 401 to a cached token (SMART) drops it
// and retries the request once with a new one; a static token's 401 is
// refused for good.
func TestUnauthorizedRenewsToken(t *testing.T) {
	var sawBearer atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawBearer.Store(r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable) // stop after the first request
	}))
	defer hs.Close()

	auth := &countingAuth{}
	auth.token.Store("stale")
	c, _ := newClient(t, Config{BaseURL: hs.URL, Auth: auth})
	err := c.Deliver(context.Background(), fakeNotification())
	if auth.invalidated.Load() != 1 || !strings.Contains(err.Error(), "503") {
		t.Errorf("after a 401: %d invalidations, error %v; want 1 and the retried request's 503", auth.invalidated.Load(), err)
	}

	c, _ = newClient(t, Config{BaseURL: hs.URL, Auth: Bearer("static")})
	err = c.Deliver(context.Background(), fakeNotification())
	if !errors.Is(err, ErrRejected) || sawBearer.Load() != "Bearer static" {
		t.Errorf("static token refused: %v (sent %v), want ErrRejected", err, sawBearer.Load())
	}
	c, _ = newClient(t, Config{BaseURL: hs.URL, Auth: Bearer("")})
	_ = c.Deliver(context.Background(), fakeNotification())
	if sawBearer.Load() != "" {
		t.Errorf("Bearer(\"\") sent Authorization %q", sawBearer.Load())
	}
}

func TestNewConfig(t *testing.T) {
	for _, cfg := range []Config{
		{BaseURL: ""},
		{BaseURL: "ftp://ehr/fhir"},
		{BaseURL: "http://ehr/fhir?x=1"},
		{BaseURL: "http://ehr/fhir", UnknownPatient: "guess"},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): %v, want ErrConfig", cfg, err)
		}
	}
	c, err := New(Config{BaseURL: "http://ehr/fhir/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.base != "http://ehr/fhir" || c.system != DefaultPatientSystem || c.policy != PatientDefer || c.http.Timeout != defaultTimeout {
		t.Errorf("defaults: base %q system %q policy %q timeout %v", c.base, c.system, c.policy, c.http.Timeout)
	}
}
