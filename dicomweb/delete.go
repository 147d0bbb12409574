package dicomweb

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/store"
)

// purgeRetry is the Retry-After of a study that cannot be deleted yet.
const purgeRetry = 60 // seconds

// deleteRoutes adds DELETE /studies/{study}: PS3.18 defines no deletion;
// this is the request Orthanc's and dcm4chee's DICOMweb services answer
// for it. It purges the study (ingest.Service.Purge: erased, audited as
// DICOM Study Deleted); the gateway requires the admin scope for it.
func (s *Server) deleteRoutes(mux *http.ServeMux) {
	s.handle(mux, "DELETE "+Prefix+"/studies/{study}", "delete", s.deleteStudy)
}

func (s *Server) deleteStudy(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("study")
	if !dcm.ValidUID(uid) {
		s.fail(w, r, http.StatusBadRequest, "dicomweb: invalid Study Instance UID")
		return
	}
	peer, user := ingest.Client(r.Context(), r.RemoteAddr, "DICOMweb client")
	_, err := s.ingest.Purge(r.Context(), uid, peer, user)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "dicomweb: no such study")
	case errors.Is(err, store.ErrInFlight):
		w.Header().Set("Retry-After", strconv.Itoa(purgeRetry))
		s.fail(w, r, http.StatusConflict, "dicomweb: the study has work in progress (instances not yet evaluated, a job queued or running, a delivery pending, or its workitem in progress); retry later")
	default:
		s.fail(w, r, http.StatusInternalServerError, "dicomweb: deleting the study failed")
	}
}
