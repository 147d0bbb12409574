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
	"sync"
	"time"

	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/store"
)

// Service ingests instances into a Store.
type Service struct {
	store     *store.Store
	log       *slog.Logger
	onRelease func(studyUIDs []string, at time.Time)

	mu      sync.Mutex
	studies map[uint64]map[string]bool // association → the studies it stored instances of
}

// New returns a Service writing to st. onRelease (may be nil) is told the
// studies an association stored instances of when the peer released it
// (study assembly takes that as a hint the studies are complete).
func New(st *store.Store, log *slog.Logger, onRelease func(studyUIDs []string, at time.Time)) *Service {
	return &Service{store: st, log: log, onRelease: onRelease, studies: map[uint64]map[string]bool{}}
}

// AssociationEnded implements dimse.AssociationEnder.
func (s *Service) AssociationEnded(id uint64, reason dimse.EndReason) {
	s.mu.Lock()
	studies := s.studies[id]
	delete(s.studies, id)
	s.mu.Unlock()
	if reason != dimse.EndReleased || s.onRelease == nil || len(studies) == 0 {
		return
	}
	s.onRelease(slices.Sorted(maps.Keys(studies)), time.Now())
}

// HandleStore implements dimse.Handler: the data set streams into the store,
// and the status is success only once the instance is durable.
func (s *Service) HandleStore(ctx context.Context, req *dimse.StoreRequest, data io.Reader) dimse.Status {
	res, err := s.store.Ingest(ctx, store.Incoming{
		SOPClassUID:       req.SOPClassUID,
		SOPInstanceUID:    req.SOPInstanceUID,
		TransferSyntaxUID: req.TransferSyntaxUID,
		CallingAE:         req.Association.CallingAE,
		CalledAE:          req.Association.CalledAE,
		RemoteAddr:        req.Association.RemoteAddr,
		Source:            "dimse",
	}, data)
	if err == nil && s.onRelease != nil {
		s.mu.Lock()
		set := s.studies[req.Association.ID]
		if set == nil {
			set = map[string]bool{}
			s.studies[req.Association.ID] = set
		}
		set[res.Instance.StudyInstanceUID] = true
		s.mu.Unlock()
	}
	o := outcomeOf(res.Outcome, err)
	if o.logLevel == slog.LevelError {
		s.log.Error("ingest: instance not stored", "reason", o.name, "err", err, "assoc", req.Association.ID)
	}
	return dimse.Status{Code: o.dimse, Comment: o.comment}
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
