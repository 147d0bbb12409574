package dicomweb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// Tags of the STOW-RS response (PS3.18 10.5.3, Table 10.5.3-2).
const (
	tagRetrieveURL             = 0x00081190
	tagFailedSOPSequence       = 0x00081198
	tagReferencedSOPSequence   = 0x00081199
	tagReferencedSOPClassUID   = 0x00081150
	tagReferencedSOPInstanceUI = 0x00081155
	tagFailureReason           = 0x00081197
	tagWarningReason           = 0x00081196
)

// Failure reasons of parts that never reached the store (PS3.18 10.5.3:
// the values of PS3.4 Annex B).
const (
	reasonCannotUnderstand = 0xC000 // not a Part 10 file, or not application/dicom
)

func (s *Server) stowRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST "+Prefix+"/studies", "stow", s.stow)
	s.handle(mux, "POST "+Prefix+"/studies/{study}", "stow", s.stow)
}

// errTooManyParts: the request carries more than Config.MaxParts parts.
var errTooManyParts = errors.New("dicomweb: too many parts")

// stow is STOW-RS (PS3.18 10.5): a multipart/related body of
// application/dicom parts, each streamed into the store as it arrives and
// answered in the response only once durable. The body is never held
// whole; a part is read once, straight into the store.
func (s *Server) stow(w http.ResponseWriter, r *http.Request) {
	study := r.PathValue("study")
	if study != "" && !dcm.ValidUID(study) {
		s.fail(w, r, http.StatusBadRequest, "the study in the path is not a valid UID")
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		s.fail(w, r, http.StatusUnsupportedMediaType, `want Content-Type: multipart/related; type="application/dicom"`)
		return
	}
	if t := strings.ToLower(params["type"]); t != "" && t != MediaDICOM {
		// application/dicom+json with bulk data (PS3.18 10.5.1.2.2) is not
		// supported: instances only.
		s.fail(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("multipart/related type %q is not supported; send application/dicom parts", params["type"]))
		return
	}
	if params["boundary"] == "" {
		s.fail(w, r, http.StatusBadRequest, "multipart/related without a boundary")
		return
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request of %d bytes exceeds the limit of %d", r.ContentLength, s.cfg.MaxRequestBytes))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	mr := multipart.NewReader(bufio.NewReaderSize(body, 64<<10), params["boundary"])

	// Parts are read one after the other, but each is stored on its own
	// goroutine: once its bytes are read (into the store's log), the next
	// part is read while the store walks and fsyncs the previous one. At
	// most stowInFlight instances are in the store at once; the answer
	// waits for all of them.
	var (
		slots   = make(chan struct{}, stowInFlight)
		wg      sync.WaitGroup
		results []*partResult
		reqErr  error
	)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			reqErr = err
			break
		}
		if len(results) >= s.cfg.MaxParts {
			p.Close()
			reqErr = errTooManyParts
			break
		}
		res := &partResult{item: dicomjson.Dataset{}}
		results = append(results, res)
		in, data, ok := s.preparePart(r, p, study, res)
		if !ok {
			if res.bodyErr = cmpErr(res.bodyErr, drain(p)); res.bodyErr != nil {
				reqErr = res.bodyErr
				break
			}
			continue
		}
		slots <- struct{}{}
		read := &eofReader{r: data, done: make(chan struct{})}
		finished := make(chan struct{})
		wg.Go(func() {
			defer func() { <-slots; close(finished) }()
			s.storePart(r, in, read, res)
		})
		select {
		case <-read.done: // its bytes are in; read the next part
		case <-finished: // refused before reading it all
		}
		// The store no longer reads this part (eofReader is sticky), so
		// the rest of it can be skipped here.
		berr := drain(p)
		if berr == nil && read.failed() {
			berr = read.err
		}
		if berr != nil {
			// The body broke in the middle of this part: nothing of it is
			// kept (the store saw the read fail), and the request is over.
			<-finished
			res.bodyErr = cmpErr(res.bodyErr, berr)
			reqErr = res.bodyErr
			break
		}
	}
	wg.Wait()
	// Whatever was stored is audited, even if the request then failed.
	defer s.auditStored(r, results)
	var stored, failed []dicomjson.Dataset
	warned := false
	for _, res := range results {
		switch {
		case res.bodyErr != nil:
			// Nothing of a part the body broke in was kept.
			if reqErr == nil {
				reqErr = res.bodyErr
			}
		case res.ok:
			stored = append(stored, res.item)
			warned = warned || res.warn
		default:
			failed = append(failed, res.item)
		}
	}
	parts := len(results)
	resp := dicomjson.Dataset{}
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(reqErr, &maxErr):
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request exceeds the limit of %d bytes; %d instances before it were stored", s.cfg.MaxRequestBytes, len(stored)))
		return
	case errors.Is(reqErr, errTooManyParts):
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d parts; the first %d were processed", s.cfg.MaxParts, s.cfg.MaxParts))
		return
	case reqErr != nil:
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("malformed or truncated multipart body after %d complete parts: %v", len(stored)+len(failed), reqErr))
		return
	case parts == 0:
		s.fail(w, r, http.StatusBadRequest, "the multipart body holds no part")
		return
	}
	if study != "" {
		resp.Set(tagRetrieveURL, "UR", baseURL(r)+"/studies/"+study)
	}
	resp.SetItems(tagReferencedSOPSequence, stored...)
	if len(failed) > 0 {
		resp.SetItems(tagFailedSOPSequence, failed...)
	}
	// PS3.18 10.5.3.1: 200 all stored; 202 some failed or were stored with
	// warnings; 409 none stored.
	code := http.StatusOK
	switch {
	case len(stored) == 0:
		code = http.StatusConflict
	case len(failed) > 0 || warned:
		code = http.StatusAccepted
	}
	s.log.Info("dicomweb: STOW-RS", "status", code, "stored", len(stored), "failed", len(failed),
		"chunked", r.ContentLength < 0, "remote", r.RemoteAddr)
	writeJSON(w, code, resp)
}

// stowInFlight bounds the instances of one request being stored at once.
const stowInFlight = 4

// partResult is what became of one part: a Referenced SOP Sequence item
// when stored (ok), else a Failed SOP Sequence item; bodyErr is the
// request body failing mid-part.
type partResult struct {
	item    dicomjson.Dataset
	ins     store.Instance // when ok
	ok      bool
	warn    bool
	bodyErr error
}

// preparePart checks a part's media type and reads its file meta; ok is
// false when it is refused (res says why).
func (s *Server) preparePart(r *http.Request, p *multipart.Part, study string, res *partResult) (store.Incoming, io.Reader, bool) {
	if ct := p.Header.Get("Content-Type"); ct != "" {
		if mt, _, perr := mime.ParseMediaType(ct); perr != nil || mt != MediaDICOM {
			s.log.Warn("dicomweb: STOW-RS part is not application/dicom; not stored", "content_type", mt)
			res.item.Set(tagFailureReason, "US", fmt.Sprint(reasonCannotUnderstand))
			return store.Incoming{}, nil, false
		}
	}
	meta, data, err := dcm.OpenPart10(p)
	if err != nil {
		if isBodyError(err) {
			res.bodyErr = err
		} else {
			s.log.Warn("dicomweb: STOW-RS part is not a DICOM Part 10 file; not stored", "err", err)
			res.item.Set(tagFailureReason, "US", fmt.Sprint(reasonCannotUnderstand))
		}
		return store.Incoming{}, nil, false
	}
	res.item.Set(tagReferencedSOPClassUID, "UI", meta.MediaStorageSOPClassUID)
	res.item.Set(tagReferencedSOPInstanceUI, "UI", meta.MediaStorageSOPInstanceUID)
	return store.Incoming{
		SOPClassUID:       meta.MediaStorageSOPClassUID,
		SOPInstanceUID:    meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID,
		RemoteAddr:        r.RemoteAddr,
		Source:            "stow",
		StudyInstanceUID:  study,
	}, data, true
}

// storePart streams one prepared part into the store.
func (s *Server) storePart(r *http.Request, in store.Incoming, data io.Reader, res *partResult) {
	st := s.ingest.Store(r.Context(), in, data)
	switch {
	case st.Err != nil && isBodyError(st.Err):
		res.bodyErr = st.Err
	case st.Err != nil:
		s.log.Warn("dicomweb: STOW-RS instance not stored", "instance", dcm.UIDRef(in.SOPInstanceUID), "err", st.Err)
		res.item.Set(tagFailureReason, "US", fmt.Sprint(st.Status))
	default:
		res.ok, res.warn, res.ins = true, st.Warning(), st.Instance
		res.item.Set(tagRetrieveURL, "UR", baseURL(r)+"/studies/"+st.Instance.StudyInstanceUID+"/series/"+
			st.Instance.SeriesInstanceUID+"/instances/"+st.Instance.SOPInstanceUID)
		if res.warn {
			res.item.Set(tagWarningReason, "US", fmt.Sprint(st.Status))
		}
	}
}

// eofReader passes reads through until the first error (io.EOF at the
// end), then closes done and answers that error to every later read
// without touching r again: the multipart reader has moved on.
type eofReader struct {
	r    io.Reader
	err  error
	done chan struct{}
}

// failed reports a read error other than the end of the part; call it
// only once done is closed or the reader's user has returned.
func (e *eofReader) failed() bool {
	select {
	case <-e.done:
		return !errors.Is(e.err, io.EOF)
	default:
		return false
	}
}

func (e *eofReader) Read(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.r.Read(b)
	if err != nil {
		e.err = err
		close(e.done)
	}
	return n, err
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// isBodyError reports a failure reading the request (the store says the
// sender's stream broke) as opposed to a refused instance.
func isBodyError(err error) bool {
	var maxErr *http.MaxBytesError
	return errors.As(err, &maxErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, multipart.ErrMessageTooLarge)
}

// drain reads the rest of a refused part, so the next one can be read;
// only a broken body is an error.
func drain(p *multipart.Part) error {
	_, err := io.Copy(io.Discard, p)
	return err
}
