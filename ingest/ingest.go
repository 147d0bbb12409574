// Package ingest turns instances received over any protocol into durable,
// indexed instances, and maps what happened to the status each protocol
// answers with (status.go holds the one table for that).
//
// It is the C-STORE SCP's dimse.Handler; STOW-RS will call the same path.
package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/store"
)

// Service ingests instances into a Store.
type Service struct {
	store     *store.Store
	log       *slog.Logger
	onRelease func(studyUIDs []string, at time.Time)
	audit     Recorder
	ae        string

	mu    sync.Mutex
	assoc map[uint64]*assocStored // association → what it stored
}

// assocStored is what one association stored: the studies (for the
// release hint) and the instances (for its audit messages).
type assocStored struct {
	from    audit.Node
	to      audit.Node
	studies map[string]bool
	ins     []store.Instance
}

// New returns a Service writing to st. onRelease (may be nil) is told the
// studies an association stored instances of when the peer released it
// (study assembly takes that as a hint the studies are complete).
func New(st *store.Store, log *slog.Logger, onRelease func(studyUIDs []string, at time.Time)) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, log: log, onRelease: onRelease, assoc: map[uint64]*assocStored{}}
}

// AuditTo records, from now on, what each association stored (one DICOM
// Instances Transferred message per patient when it ends) and each refused
// TLS connection, with ae as radgate's AE title.
func (s *Service) AuditTo(ae string, r Recorder) { s.ae, s.audit = ae, r }

// Audit is the Recorder AuditTo set (nil: none) and radgate as a
// participant, for the other protocols serving the same store (DICOMweb).
func (s *Service) Audit() (Recorder, audit.Node) { return s.audit, Node(s.ae, "") }

// AssociationEnded implements dimse.AssociationEnder.
func (s *Service) AssociationEnded(id uint64, reason dimse.EndReason) {
	s.mu.Lock()
	a := s.assoc[id]
	delete(s.assoc, id)
	s.mu.Unlock()
	if a == nil {
		return
	}
	s.audit.Received(a.from, a.to, audit.Node{}, a.ins)
	if reason != dimse.EndReleased || s.onRelease == nil || len(a.studies) == 0 {
		return
	}
	s.onRelease(slices.Sorted(maps.Keys(a.studies)), time.Now())
}

// TLSRefused implements dimse.TLSRefuser: a refused TLS connection is a
// node authentication failure (PS3.15 A.5.3.11).
func (s *Service) TLSRefused(remoteAddr string, err error) {
	if s.audit == nil {
		return
	}
	s.audit(audit.NodeAuthenticationFailed(audit.AuthEvent{
		Header: audit.Header{Description: "TLS handshake refused: " + err.Error()},
		User:   audit.Node{Addr: remoteAddr},
		Node:   audit.Node{ID: s.ae},
	}))
}

// HandleStore implements dimse.Handler: the data set streams into the store,
// and the status is success only once the instance is durable.
func (s *Service) HandleStore(ctx context.Context, req *dimse.StoreRequest, data io.Reader) dimse.Status {
	res := s.Store(ctx, store.Incoming{
		SOPClassUID:       req.SOPClassUID,
		SOPInstanceUID:    req.SOPInstanceUID,
		TransferSyntaxUID: req.TransferSyntaxUID,
		CallingAE:         req.Association.CallingAE,
		CalledAE:          req.Association.CalledAE,
		RemoteAddr:        req.Association.RemoteAddr,
		Source:            "dimse",
		RequestPriority:   strings.ToUpper(req.Priority.String()),
	}, data)
	if res.Err == nil {
		s.mu.Lock()
		a := s.assoc[req.Association.ID]
		if a == nil {
			info := req.Association
			from := audit.Node{ID: info.CallingAE, Addr: info.RemoteAddr, Name: info.TLSPeer}
			a = &assocStored{from: from, to: Node(info.CalledAE, ""), studies: map[string]bool{}}
			s.assoc[req.Association.ID] = a
		}
		a.studies[res.Instance.StudyInstanceUID] = true
		if s.audit != nil {
			a.ins = append(a.ins, res.Instance)
		}
		s.mu.Unlock()
	}
	if res.o.logLevel == slog.LevelError {
		s.log.Error("ingest: instance not stored", "reason", res.o.name, "err", res.Err, "assoc", req.Association.ID)
	}
	return dimse.Status{Code: res.Status, Comment: res.Comment}
}

// Stored is what Store did with one instance, in each protocol's terms.
type Stored struct {
	Instance store.Instance // the record now current (zero when it failed)
	Err      error          // nil when stored (or an identical duplicate)
	// Status is the DIMSE status (PS3.4 B.2.3), which STOW-RS also reports
	// as the FailureReason or WarningReason (PS3.18 10.5.3); HTTP the
	// status the outcome alone would answer; Comment says why.
	Status  uint16
	HTTP    int
	Comment string
	o       outcome
}

// Warning reports a stored instance that the sender should hear about
// (a different duplicate dropped).
func (st Stored) Warning() bool { return st.Err == nil && st.Status != dimse.StatusSuccess }

// Store streams one instance into the store (the path every protocol
// takes) and maps the outcome through the status table.
func (s *Service) Store(ctx context.Context, in store.Incoming, data io.Reader) Stored {
	res, err := s.store.Ingest(ctx, in, data)
	o := outcomeOf(res.Outcome, err)
	return Stored{Instance: res.Instance, Err: err, Status: o.dimse, HTTP: o.http, Comment: o.comment, o: o}
}

// outcome is one row of the status table.
type outcome struct {
	name     string
	dimse    uint16
	http     int
	comment  string
	logLevel slog.Level
}

// outcomeOf finds the row for a store result.
func outcomeOf(o store.Outcome, err error) outcome {
	if err == nil {
		return successes[o]
	}
	if errors.Is(err, dimse.ErrInterrupted) {
		return interrupted
	}
	for _, row := range failures {
		if errors.Is(err, row.err) {
			return row.outcome
		}
	}
	return internalFailure
}
