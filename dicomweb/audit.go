package dicomweb

import (
	"net/http"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/store"
)

// The audit messages of DICOMweb (PS3.15 A.5.3), through the ingest
// Service's Recorder: every study read and every search, by whom; STOW-RS
// like C-STORE.

// auditStored records what a STOW-RS request stored.
func (s *Server) auditStored(r *http.Request, results []*partResult) {
	rec, us := s.ingest.Audit()
	if rec == nil {
		return
	}
	var ins []store.Instance
	for _, res := range results {
		if res.ok {
			ins = append(ins, res.ins)
		}
	}
	peer, user := ingest.Client(r.Context(), r.RemoteAddr, "STOW-RS client")
	rec.Received(peer, us, user, ins)
}

// auditRetrieved records a WADO-RS read of instances (the resource, its
// metadata, frames, bulk data or a rendering).
func (s *Server) auditRetrieved(r *http.Request, ins []store.Instance) {
	rec, us := s.ingest.Audit()
	if rec == nil {
		return
	}
	peer, user := ingest.Client(r.Context(), r.RemoteAddr, "WADO-RS client")
	for _, sub := range ingest.Subjects(ins) {
		rec(audit.StudyRetrieved(audit.Transfer{From: us, To: peer, User: user, Patient: sub.Patient, Studies: sub.Studies}))
	}
}

// auditQuery records a QIDO-RS or UPS-RS search with its query string.
func (s *Server) auditQuery(r *http.Request, sopClass string) {
	rec, us := s.ingest.Audit()
	if rec == nil {
		return
	}
	peer, user := ingest.Client(r.Context(), r.RemoteAddr, "DICOMweb client")
	rec(audit.Query(audit.QueryEvent{Client: peer, Server: us, User: user, SOPClassUID: sopClass, Query: []byte(r.URL.RawQuery)}))
}
