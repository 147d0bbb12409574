package ingest

import (
	"context"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/store"
)

// Purge deletes a study from the store (store.Store.Purge: its rows and
// its instances' records, erased) and records one DICOM Study Deleted
// message per patient: by is who deleted it (radgate's retention, or the
// client that asked), user the person behind that client, if known. The
// errors are the store's: store.ErrNotFound, store.ErrInFlight.
func (s *Service) Purge(ctx context.Context, studyInstanceUID string, by, user audit.Node) ([]store.Instance, error) {
	ins, err := s.store.Purge(ctx, studyInstanceUID)
	if err != nil {
		return nil, err
	}
	s.log.Info("store: study purged", "study", dcm.UIDRef(studyInstanceUID), "instances", len(ins), "by", by.ID)
	if s.audit != nil {
		for _, sub := range Subjects(ins) {
			for _, st := range sub.Studies {
				s.audit(audit.StudyDeleted(audit.DeleteEvent{By: by, User: user, Patient: sub.Patient, Study: st}))
			}
		}
	}
	return ins, nil
}
