package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/dicomweb"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/store"
)

// ehr is the FHIR side of the pipeline: the client that writes to the
// EHR (an outbox Sender under dest) and the hooks that queue what it
// writes, a study's ImagingStudy with its evaluation and a result's
// DiagnosticReport with its SR.
type ehr struct {
	client *fhir.Client
	dest   string // the outbox destination: "fhir:" + the base URL
	g      *Gateway
}

// newEHR builds the FHIR client from the settings; nil when fhir_url is
// empty.
func (g *Gateway) newEHR(cfg *config.Config) (*ehr, error) {
	if cfg.FHIRURL == "" {
		return nil, nil
	}
	var hc *http.Client
	if cfg.FHIRTLSCert != "" || cfg.FHIRTLSKey != "" {
		var err error
		if hc, err = fhir.MutualTLS(cfg.FHIRTLSCert, cfg.FHIRTLSKey, cfg.FHIRTLSCA); err != nil {
			return nil, fmt.Errorf("gateway: FHIR mutual TLS: %w", err)
		}
	}
	var auth fhir.Authorizer = fhir.Bearer(cfg.FHIRToken)
	if cfg.FHIRClientID != "" {
		a, err := fhir.NewSMART(fhir.SMARTConfig{
			FHIRBase: cfg.FHIRURL, TokenURL: cfg.FHIRTokenURL, ClientID: cfg.FHIRClientID,
			KeyFile: cfg.FHIRKeyFile, KeyID: cfg.FHIRKeyID, Scopes: cfg.FHIRScopes, HTTPClient: hc,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: FHIR SMART Backend Services: %w", err)
		}
		auth = a
	}
	c, err := fhir.New(fhir.Config{
		BaseURL: cfg.FHIRURL, Auth: auth, PatientSystem: cfg.FHIRPatientSystem,
		UnknownPatient: fhir.PatientPolicy(cfg.FHIRUnknownPatient), HTTPClient: hc, Log: g.log,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: FHIR: %w", err)
	}
	return &ehr{client: c, dest: "fhir:" + cfg.FHIRURL, g: g}, nil
}

func fhirAuthMode(c *config.Config) string {
	mode := "no authorization"
	switch {
	case c.FHIRClientID != "":
		mode = "SMART Backend Services, client " + c.FHIRClientID
	case c.FHIRToken != "":
		mode = "static bearer token"
	}
	if c.FHIRTLSCert != "" {
		mode += ", mutual TLS"
	}
	return mode
}

// wadoBase is radgate's DICOMweb base URL as the EHR should use it.
func (e *ehr) wadoBase() string {
	return e.g.publicURL() + dicomweb.Prefix
}

// study queues the ImagingStudy of a complete study; the object key
// names the instances it describes, so an unchanged study is not sent
// twice and a changed one is sent again.
func (e *ehr) study(_ context.Context, study string, ins []store.Instance) ([]store.NewDelivery, error) {
	n, err := fhir.StudyNotification(ins, e.wadoBase())
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var ready time.Time
	for _, in := range ins {
		fmt.Fprintf(h, "%s/%s\n", in.SOPInstanceUID, in.SHA256)
		if in.ReceivedAt.After(ready) {
			ready = in.ReceivedAt
		}
	}
	return e.queue(n, fhir.KindImagingStudy, "imagingstudy/"+study+"/"+hex.EncodeToString(h.Sum(nil))[:16], ready)
}

// report queues the DiagnosticReport of a job's result.
func (e *ehr) report(_ context.Context, j store.Job, ins []store.Instance, res *inference.Result, l *inference.Loaded) ([]store.NewDelivery, error) {
	n, err := fhir.ReportNotification(ins, res, fhir.Algorithm{
		Name: l.Name, Version: l.Version, Manufacturer: l.Manufacturer, SHA256: l.SHA256, TrainedOnPhantoms: l.TrainedOnPhantoms,
	}, j.Revision, e.wadoBase())
	if err != nil {
		return nil, err
	}
	return e.queue(n, fhir.KindReport, "report/"+j.StudyInstanceUID+"/"+l.Name+"/"+l.Version+"/r"+strconv.Itoa(j.Revision), j.ReadyAt)
}

func (e *ehr) queue(n fhir.Notification, kind, key string, ready time.Time) ([]store.NewDelivery, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	return []store.NewDelivery{{Destination: e.dest, Kind: kind, ObjectUID: key, Payload: b, ReadyAt: ready}}, nil
}
