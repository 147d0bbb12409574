package dicomweb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/store"
)

// WADO-RS (PS3.18 10.4). The instance resources stream each stored Part 10
// blob into its own part; only a transcode to explicit VR little endian
// holds one instance in memory at a time.

// Transfer syntaxes WADO-RS tells apart (PS3.5 A.1–A.5).
const (
	tsImplicitLE = "1.2.840.10008.1.2"
	tsExplicitLE = "1.2.840.10008.1.2.1"
	tsDeflatedLE = "1.2.840.10008.1.2.1.99"
	tsExplicitBE = "1.2.840.10008.1.2.2"
)

// nativeTS reports whether ts is an unencapsulated, uncompressed syntax that
// suyashkumar/dicom parses as it is (deflate needs inflating first).
func nativeTS(ts string) bool {
	return ts == tsImplicitLE || ts == tsExplicitLE || ts == tsExplicitBE
}

func (s *Server) wadoRoutes(mux *http.ServeMux) {
	const st, se, in = "/studies/{study}", "/series/{series}", "/instances/{instance}"
	for _, p := range []string{st, st + se, st + se + in} {
		s.handle(mux, "GET "+Prefix+p, "wado", s.retrieveInstances)
		s.handle(mux, "GET "+Prefix+p+"/metadata", "wado", s.retrieveMetadata)
	}
	s.handle(mux, "GET "+Prefix+st+se+in+"/bulkdata/{path...}", "wado", s.retrieveBulkdata)
	s.handle(mux, "GET "+Prefix+st+se+in+"/frames/{frames}", "wado", s.retrieveFrames)
	s.handle(mux, "GET "+Prefix+st+se+in+"/rendered", "wado", s.retrieveRendered)
	s.handle(mux, "GET "+Prefix+st+se+in+"/frames/{frames}/rendered", "wado", s.retrieveRendered)
}

// lookup returns the current instances the request's path names (study,
// and series and instance where present), in the store's order. It has
// answered the request when ok is false: 404 for nothing there.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (_ []store.Instance, ok bool) {
	all, err := s.store.Work().StudyInstances(r.Context(), r.PathValue("study"))
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "dicomweb: instance lookup failed")
		return nil, false
	}
	series, sop := r.PathValue("series"), r.PathValue("instance")
	var out []store.Instance
	for _, in := range all {
		if (series == "" || in.SeriesInstanceUID == series) && (sop == "" || in.SOPInstanceUID == sop) {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		level := "study"
		switch {
		case sop != "":
			level = "instance"
		case series != "":
			level = "series"
		}
		s.fail(w, r, http.StatusNotFound, "dicomweb: no such "+level)
		return nil, false
	}
	s.auditRetrieved(r, out)
	return out, true
}

// lookupOne is lookup for the instance-level resources.
func (s *Server) lookupOne(w http.ResponseWriter, r *http.Request) (store.Instance, bool) {
	ins, ok := s.lookup(w, r)
	if !ok {
		return store.Instance{}, false
	}
	return ins[0], true
}

// retrieveInstances serves the study, series and instance resources
// (PS3.18 10.4.1.1.1–3): multipart/related; type="application/dicom".
// Every instance's transfer syntax is settled before the first byte is
// written, so a 406 is never a truncated 200.
func (s *Server) retrieveInstances(w http.ResponseWriter, r *http.Request) {
	ins, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ranges, ok := s.acceptRanges(w, r)
	if !ok {
		return
	}
	plan := make([]string, len(ins)) // the transfer syntax each part gets
	for i, in := range ins {
		offers := []offer{{MediaDICOM, in.TransferSyntaxUID}}
		if in.TransferSyntaxUID == tsImplicitLE || in.TransferSyntaxUID == tsExplicitBE {
			offers = append(offers, offer{MediaDICOM, tsExplicitLE})
		}
		o, ok := negotiate(ranges, true, offers)
		if !ok {
			s.fail(w, r, http.StatusNotAcceptable, fmt.Sprintf(
				"dicomweb: cannot serve an instance stored in %s as requested (this server transcodes native syntaxes to %s only)",
				in.TransferSyntaxUID, tsExplicitLE))
			return
		}
		plan[i] = o.ts
	}
	// Parts go out through a 256 KiB buffer: a CT slice is then two
	// writes to the connection, not the sixteen of 32 KiB copies.
	bw := bufio.NewWriterSize(w, retrieveBuffer)
	mw := multipart.NewWriter(bw)
	w.Header().Set("Content-Type", `multipart/related; type="`+MediaDICOM+`"; boundary=`+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	for i, in := range ins {
		if err := s.writeInstancePart(r.Context(), mw, in, plan[i]); err != nil {
			// The status is sent: end the body short (no closing boundary),
			// which a client sees as a truncated response.
			s.log.Error("dicomweb: retrieve aborted", "sop_instance", dcm.UIDRef(in.SOPInstanceUID), "err", err)
			_ = bw.Flush()
			return
		}
	}
	_ = mw.Close()
	_ = bw.Flush()
}

// retrieveBuffer is the write buffer of an instance retrieval.
const retrieveBuffer = 256 << 10

// writeInstancePart writes one instance as a part, as stored or transcoded
// to ts.
func (s *Server) writeInstancePart(ctx context.Context, mw *multipart.Writer, in store.Instance, ts string) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", MediaDICOM+"; transfer-syntax="+ts)
	if ts == in.TransferSyntaxUID {
		rc, err := s.store.OpenBlob(ctx, in.BlobKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		buf := s.bufs.Get().(*[]byte)
		_, err = io.CopyBuffer(pw, rc, *buf)
		s.bufs.Put(buf)
		return err
	}
	buf, ts0, err := s.readDataset(ctx, in)
	if err != nil {
		return err
	}
	out, err := toExplicitLE(buf, ts0)
	if err != nil {
		return err
	}
	pw, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	_, err = pw.Write(out)
	return err
}

// errUnsupported marks a request this server understands but cannot
// serve for the stored encoding (answered 406).
var errUnsupported = errors.New("dicomweb: not supported for this instance")
