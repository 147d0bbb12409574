package dicomweb

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/worklist"
)

// UPS-RS (PS3.18 11) over the reading worklist: create, search, retrieve,
// update, change state, request cancellation, subscriptions, and the
// WebSocket event channel subscribers read them from.

// UIDs of the UPS-RS subscriptions that are not to one workitem (PS3.4
// CC.3.1): every workitem, and (not supported) a filtered set.
const (
	globalSubscriptionUID   = "1.2.840.10008.5.1.4.34.5"
	filteredSubscriptionUID = "1.2.840.10008.5.1.4.34.5.1"
	upsEventSOPClass        = "1.2.840.10008.5.1.4.34.6.4"
)

// Event Type IDs of a UPS N-EVENT-REPORT (PS3.4 CC.2.4.2).
const (
	eventStateReport     = 1
	eventCancelRequested = 2
	eventProgressReport  = 3
)

const (
	maxUPSBody = 1 << 20
	tagTxUID   = 0x00081195
	tagState   = 0x00741000
	tagReason  = 0x00741238 // Reason For Cancellation
)

// subscriptions are the AE titles subscribed, to every workitem or to
// some. They are kept in memory: a restart forgets them, and subscribers
// subscribe again when they reconnect (as the PS3.18 event channel has
// them reconnect).
type subscriptions struct {
	mu sync.Mutex
	ae map[string]*subscription
}

type subscription struct {
	global bool
	uids   map[string]bool
}

func (s *subscriptions) add(ae, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ae[ae]
	if sub == nil {
		sub = &subscription{uids: map[string]bool{}}
		s.ae[ae] = sub
	}
	if uid == globalSubscriptionUID {
		sub.global = true
	} else {
		sub.uids[uid] = true
	}
}

func (s *subscriptions) remove(ae, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ae[ae]
	if sub == nil {
		return
	}
	if uid == globalSubscriptionUID {
		sub.global = false
	} else {
		delete(sub.uids, uid)
	}
}

func (s *subscriptions) wants(ae, uid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ae[ae]
	return sub != nil && (sub.global || sub.uids[uid])
}

func (s *Server) upsRoutes(mux *http.ServeMux) {
	if s.cfg.Worklist == nil {
		return
	}
	p := Prefix + "/workitems"
	s.handle(mux, "POST "+p, "ups", s.upsCreate)
	s.handle(mux, "GET "+p, "ups", s.upsSearch)
	s.handle(mux, "GET "+p+"/{uid}", "ups", s.upsRetrieve)
	s.handle(mux, "POST "+p+"/{uid}", "ups", s.upsUpdate)
	s.handle(mux, "PUT "+p+"/{uid}/state", "ups", s.upsState)
	s.handle(mux, "POST "+p+"/{uid}/cancelrequest", "ups", s.upsCancel)
	s.handle(mux, "POST "+p+"/{uid}/subscribers/{ae}", "ups", s.upsSubscribe)
	s.handle(mux, "DELETE "+p+"/{uid}/subscribers/{ae}", "ups", s.upsUnsubscribe)
	mux.HandleFunc("GET "+Prefix+"/subscribers/{ae}", s.upsEvents)
}

// upsFail answers a worklist error with its UPS-RS status.
func (s *Server) upsFail(w http.ResponseWriter, r *http.Request, err error) {
	code := worklist.HTTPStatus(err)
	msg := "dicomweb: " + err.Error()
	if code == http.StatusInternalServerError {
		msg = "dicomweb: the worklist failed"
		s.log.Error("dicomweb: UPS-RS failed", "route", r.Pattern, "err", err)
	}
	s.fail(w, r, code, msg)
}

// body reads a UPS-RS request's DICOM JSON data set.
func (s *Server) upsBody(w http.ResponseWriter, r *http.Request, optional bool) (dicomjson.Dataset, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, MediaDICOMJSON) && !strings.HasPrefix(ct, "application/json") {
		s.fail(w, r, http.StatusUnsupportedMediaType, "dicomweb: UPS-RS takes "+MediaDICOMJSON)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUPSBody))
	if err != nil {
		s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("dicomweb: a UPS-RS body is at most %d bytes", maxUPSBody))
		return nil, false
	}
	if optional && len(strings.TrimSpace(string(b))) == 0 {
		return dicomjson.Dataset{}, true
	}
	d, err := worklist.ParseDataset(b)
	if err != nil {
		s.upsFail(w, r, err)
		return nil, false
	}
	return d, true
}

// upsActor names the caller in the worklist's log: the protocol, not a
// person (authentication comes with the security work).
const upsActor = "ups-rs"

func (s *Server) upsCreate(w http.ResponseWriter, r *http.Request) {
	d, ok := s.upsBody(w, r, false)
	if !ok {
		return
	}
	uid := r.URL.Query().Get("workitem")
	if uid == "" {
		// The parameter is a bare "?UID" in PS3.18 11.4.1.
		if q := r.URL.RawQuery; q != "" && !strings.ContainsAny(q, "=&") {
			uid = q
		}
	}
	wi, err := s.cfg.Worklist.Create(r.Context(), uid, d, upsActor)
	if err != nil {
		s.upsFail(w, r, err)
		return
	}
	w.Header().Set("Location", baseURL(r)+"/workitems/"+wi.UID)
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) upsRetrieve(w http.ResponseWriter, r *http.Request) {
	wi, err := s.cfg.Worklist.Get(r.Context(), r.PathValue("uid"))
	if err != nil {
		s.upsFail(w, r, err)
		return
	}
	d, err := worklist.Dataset(wi)
	if err != nil {
		s.upsFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, []dicomjson.Dataset{d})
}

// upsSearch: matching on state, priority, start date and time (a DA or DT
// range), modality, patient ID; limit and offset.
func (s *Server) upsSearch(w http.ResponseWriter, r *http.Request) {
	q, err := parseUPSSearch(r.URL.Query(), s.cfg.MaxResults)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "dicomweb: "+err.Error())
		return
	}
	s.auditQuery(r, audit.SOPClassUPSPull)
	items, err := s.cfg.Worklist.Search(r.Context(), q)
	if err != nil {
		s.upsFail(w, r, err)
		return
	}
	if len(items) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out := make([]dicomjson.Dataset, 0, len(items))
	for _, wi := range items {
		d, err := worklist.Dataset(wi)
		if err != nil {
			s.upsFail(w, r, err)
			return
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, out)
}

func parseUPSSearch(v map[string][]string, maxResults int) (store.WorkitemQuery, error) {
	q := store.WorkitemQuery{Limit: maxResults}
	for key, vals := range v {
		val := vals[0]
		switch key {
		case "ProcedureStepState", "00741000":
			for _, st := range strings.Split(val, `\`) {
				switch st {
				case worklist.Scheduled, worklist.InProgress, worklist.Completed, worklist.Canceled:
					q.States = append(q.States, st)
				default:
					return q, fmt.Errorf("ProcedureStepState %q: want SCHEDULED, IN PROGRESS, COMPLETED or CANCELED", clip(st))
				}
			}
		case "ScheduledProcedureStepPriority", "00741200":
			p, err := worklist.ParseUPSPriority(val)
			if err != nil {
				return q, err
			}
			if p == inference.High {
				q.Priorities = []int{int(inference.High), int(inference.Stat)}
			} else {
				q.Priorities = []int{int(p)}
			}
		case "ScheduledProcedureStepStartDateTime", "00404005":
			from, to, err := dateRange(val)
			if err != nil {
				return q, err
			}
			q.ScheduledFrom, q.ScheduledTo = from, to
		case "Modality", "00080060":
			q.Modality = val
		case "SOPInstanceUID", "00080018":
			q.UID = val
		case "StudyInstanceUID", "0020000D":
			q.StudyInstanceUID = val
		case "limit", "offset":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return q, fmt.Errorf("%s %q: want a count", key, clip(val))
			}
			if key == "offset" {
				q.Offset = n
			} else if n > 0 {
				q.Limit = min(n, maxResults)
			}
		case "includefield", "fuzzymatching":
			// Every attribute is returned; matching is exact.
		default:
			return q, fmt.Errorf("%q is not a UPS-RS matching key radgate supports (ProcedureStepState, ScheduledProcedureStepPriority, ScheduledProcedureStepStartDateTime, Modality, SOPInstanceUID, StudyInstanceUID)", clip(key))
		}
	}
	return q, nil
}

// dateRange parses a DA or DT value or range ("A-B", "A-", "-B"), in UTC;
// a date alone covers its whole day.
func dateRange(v string) (from, to time.Time, err error) {
	lo, hi, isRange := strings.Cut(v, "-")
	if !isRange {
		hi = lo
	}
	parse := func(s string, end bool) (time.Time, error) {
		if s == "" {
			return time.Time{}, nil
		}
		for _, l := range []string{"20060102150405", "200601021504", "2006010215", "20060102"} {
			if len(s) == len(l) {
				t, err := time.Parse(l, s)
				if err != nil {
					break
				}
				if end {
					switch len(l) {
					case 8:
						t = t.AddDate(0, 0, 1)
					case 10:
						t = t.Add(time.Hour)
					case 12:
						t = t.Add(time.Minute)
					default:
						t = t.Add(time.Second)
					}
				}
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("date %q: want YYYYMMDD[HH[MM[SS]]]", clip(s))
	}
	if from, err = parse(lo, false); err != nil {
		return
	}
	to, err = parse(hi, true)
	return
}

func (s *Server) upsUpdate(w http.ResponseWriter, r *http.Request) {
	d, ok := s.upsBody(w, r, false)
	if !ok {
		return
	}
	tx := r.URL.Query().Get("transaction")
	if tx == "" {
		tx = txOf(d)
		delete(d, dicomjson.Key(tagTxUID))
	}
	if _, err := s.cfg.Worklist.Update(r.Context(), r.PathValue("uid"), tx, d, upsActor); err != nil {
		s.upsFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func txOf(d dicomjson.Dataset) string {
	if a := d[dicomjson.Key(tagTxUID)]; a != nil && len(a.Value) > 0 {
		s, _ := a.Value[0].(string)
		return s
	}
	return ""
}

func (s *Server) upsState(w http.ResponseWriter, r *http.Request) {
	d, ok := s.upsBody(w, r, false)
	if !ok {
		return
	}
	var state string
	if a := d[dicomjson.Key(tagState)]; a != nil && len(a.Value) > 0 {
		state, _ = a.Value[0].(string)
	}
	tx := txOf(d)
	if state == "" || tx == "" {
		s.fail(w, r, http.StatusBadRequest, "dicomweb: a state change needs Procedure Step State (0074,1000) and Transaction UID (0008,1195)")
		return
	}
	if _, err := s.cfg.Worklist.ChangeState(r.Context(), r.PathValue("uid"), state, tx, upsActor); err != nil {
		s.upsFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) upsCancel(w http.ResponseWriter, r *http.Request) {
	d, ok := s.upsBody(w, r, true)
	if !ok {
		return
	}
	reason := ""
	if a := d[dicomjson.Key(tagReason)]; a != nil && len(a.Value) > 0 {
		reason, _ = a.Value[0].(string)
	}
	if _, err := s.cfg.Worklist.RequestCancel(r.Context(), r.PathValue("uid"), reason, upsActor); err != nil {
		s.upsFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// validAE: an AE title (PS3.5 6.2: 1 to 16 characters, no backslash or
// control characters).
func validAE(ae string) bool {
	if ae == "" || len(ae) > 16 || strings.TrimSpace(ae) == "" {
		return false
	}
	for _, c := range ae {
		if c < 0x20 || c == '\\' || c > 0x7E {
			return false
		}
	}
	return true
}

func (s *Server) upsSubscribe(w http.ResponseWriter, r *http.Request) {
	uid, ae := r.PathValue("uid"), r.PathValue("ae")
	switch {
	case !validAE(ae):
		s.fail(w, r, http.StatusBadRequest, "dicomweb: not an AE title")
		return
	case uid == filteredSubscriptionUID:
		s.fail(w, r, http.StatusBadRequest, "dicomweb: filtered global subscriptions are not supported; subscribe globally or to a workitem")
		return
	case uid != globalSubscriptionUID:
		if _, err := s.cfg.Worklist.Get(r.Context(), uid); err != nil {
			s.upsFail(w, r, err)
			return
		}
	}
	s.subs.add(ae, uid)
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) upsUnsubscribe(w http.ResponseWriter, r *http.Request) {
	s.subs.remove(r.PathValue("ae"), r.PathValue("uid"))
	w.WriteHeader(http.StatusOK)
}

// upsEvents is the event channel (PS3.18 11.10): a WebSocket on which
// the AE's subscribed workitems' events arrive as DICOM JSON event
// reports, one per text message.
func (s *Server) upsEvents(w http.ResponseWriter, r *http.Request) {
	ae := r.PathValue("ae")
	if !validAE(ae) {
		s.fail(w, r, http.StatusBadRequest, "dicomweb: not an AE title")
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.log.Warn("dicomweb: event channel not opened", "err", err)
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	s.m.requests.WithLabelValues("ups-events", "101").Inc()
	for e := range s.cfg.Worklist.Subscribe(ctx, 0) {
		if !s.subs.wants(ae, e.UID) {
			continue
		}
		msg, err := s.eventReport(r, e)
		if err != nil {
			continue // the workitem went away
		}
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return
		}
	}
	if ctx.Err() == nil {
		c.Close(websocket.StatusGoingAway, "event feed ended; reconnect")
	}
}

// eventReport is an event as PS3.18 11.10 sends it: the N-EVENT-REPORT's
// command attributes and its event information. Creation and state
// changes are State Reports; a cancellation request is Cancel
// Requested; radgate's other changes (priority, findings, attributes)
// are Progress Reports carrying the new priority and the comment.
func (s *Server) eventReport(r *http.Request, e store.WorklistEvent) ([]byte, error) {
	wi, err := s.cfg.Worklist.Get(r.Context(), e.UID)
	if err != nil {
		return nil, err
	}
	typ := eventProgressReport
	switch e.Kind {
	case "created", "state":
		typ = eventStateReport
	case "cancel-requested":
		typ = eventCancelRequested
	}
	d := dicomjson.Dataset{}
	d.Set(0x00000002, "UI", upsEventSOPClass)
	d.Set(0x00001000, "UI", e.UID)
	d.Set(0x00001002, "US", strconv.Itoa(typ))
	d.Set(tagState, "CS", wi.State)
	d.Set(0x00404041, "CS", "READY")
	d.Set(0x00741200, "CS", worklist.UPSPriority(inference.Priority(wi.Priority)))
	d.Set(0x00400400, "LT", worklist.Comment(wi))
	if e.Kind == "cancel-requested" && e.Reason != "" {
		d.Set(tagReason, "LT", e.Reason)
	}
	return json.Marshal([]dicomjson.Dataset{d})
}
