package worklist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/metric"
	"github.com/radgate/radgate/store"
)

// Procedure Step State values (PS3.3 C.30.1.1, PS3.4 CC.1.1).
const (
	Scheduled  = "SCHEDULED"
	InProgress = "IN PROGRESS"
	Completed  = "COMPLETED"
	Canceled   = "CANCELED"
)

// Errors, each a UPS-RS answer (the dicomweb handlers map them).
var (
	// ErrInvalid: the request is malformed or names an unknown value.
	ErrInvalid = errors.New("worklist: invalid request")
	// ErrNotFound: no such workitem.
	ErrNotFound = errors.New("worklist: no such workitem")
	// ErrState: the workitem's state does not allow it (a final state, a
	// wrong transition).
	ErrState = errors.New("worklist: not allowed in the workitem's state")
	// ErrTransaction: IN PROGRESS and the Transaction UID is missing or
	// not the performer's.
	ErrTransaction = errors.New("worklist: transaction UID missing or wrong")
	// ErrExists: a workitem with that UID exists.
	ErrExists = errors.New("worklist: workitem exists")
)

// HTTPStatus is the HTTP status that answers err, for UPS-RS (PS3.18
// 11) and the worklist page alike: 400 invalid, 404 not found, 409 a
// conflict with the workitem (it exists, its state, its transaction), 500
// anything else.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrState), errors.Is(err, ErrTransaction):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// Sink turns a workitem's change into the deliveries that tell another
// system (an HL7 RIS, an external UPS-RS worklist manager), queued in the
// change's own transaction so that none is lost.
type Sink interface {
	// Deliveries for w after events; res is the model result that caused
	// them, if one did.
	Deliveries(w store.Workitem, events []store.WorklistEvent, res *Result) ([]store.NewDelivery, error)
}

// Result is what a finished job tells the worklist.
type Result struct {
	Model, Version string
	Job            store.Job
	Result         *inference.Result
	SRUID          string // the SR reporting it
	Instances      []store.Instance
}

// Service is the reading worklist: the pipeline's hooks that create a
// study's workitem and raise its priority on a positive finding, what
// people (radiologists over the page, systems over UPS-RS) may do to it,
// and the feed of its changes.
type Service struct {
	wl    store.Worklist
	log   *slog.Logger
	sinks []Sink
	hub   *Hub
	m     *metrics
}

// New makes the worklist over the store's rows.
func New(wl store.Worklist, sinks []Sink, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{wl: wl, log: log, sinks: sinks, hub: newHub(wl, log), m: m}, nil
}

// Run feeds the subscribers until ctx ends.
func (s *Service) Run(ctx context.Context) error { return s.hub.run(ctx) }

// Subscribe returns the events after seq (0: from now on) as they come;
// the channel closes when ctx ends or the subscriber falls too far
// behind (it may then resubscribe from its last seq).
func (s *Service) Subscribe(ctx context.Context, afterSeq uint64) <-chan store.WorklistEvent {
	return s.hub.subscribe(ctx, afterSeq)
}

// changed wakes the feed at once after a change made here.
func (s *Service) changed() { s.hub.poke() }

// UID is the workitem UID of a study: derived, so a re-evaluation finds
// the same one.
func UID(studyInstanceUID string) string { return dcm.HashUID(studyInstanceUID, "ups-reading") }

// StudyComplete is the study assembler's hook: the change that gives a
// complete study its workitem (SCHEDULED, at the priority it came with and
// the routes asked for), or raises an existing one's base priority when a
// route asks for more. It is made in the evaluation's transaction.
func (s *Service) StudyComplete(studyUID string, ins []store.Instance, pri inference.Priority, routes []string) *store.WorkitemChange {
	if len(ins) == 0 {
		return nil
	}
	actor := "route:" + strings.Join(routes, ",")
	if len(routes) == 0 {
		actor = "received"
	}
	reason := fmt.Sprintf("as received and routed (%s)", Clinical(pri))
	w := newWorkitem(studyUID, ins, pri, reason)
	return &store.WorkitemChange{
		StudyInstanceUID: studyUID, Create: w, Actor: actor,
		Change: func(cur *store.Workitem) ([]store.WorklistEvent, []store.NewDelivery, error) {
			// The one just created is unchanged by this. Later: the
			// dataset follows the study's late instances, and a route
			// asking for more raises the base priority.
			var evs []store.WorklistEvent
			if !bytes.Equal(cur.Dataset, w.Dataset) {
				cur.Dataset, cur.Modality, cur.Description = w.Dataset, w.Modality, w.Description
				evs = append(evs, store.WorklistEvent{Kind: "updated", Actor: actor, Reason: "more instances"})
			}
			if int(pri) > cur.BasePriority {
				cur.BasePriority = int(pri)
				if !cur.Override && !final(cur.State) && int(pri) > cur.Priority {
					evs = append(evs, priorityEvent(cur, pri, actor, reason))
				}
			}
			if len(evs) == 0 {
				return nil, nil, nil
			}
			out, err := s.deliveries(*cur, evs, nil)
			return evs, out, err
		},
	}
}

// JobDone is the result runner's hook: the change, in the job's
// completion transaction, that records a model's findings on the study's
// workitem and raises its priority when they ask for more — unless a
// person has set the priority, or the workitem is done.
func (s *Service) JobDone(r Result) *store.WorkitemChange {
	return &store.WorkitemChange{
		StudyInstanceUID: r.Job.StudyInstanceUID,
		Create:           newWorkitem(r.Job.StudyInstanceUID, r.Instances, inference.Priority(r.Job.Priority), "as received and routed"),
		Actor:            "ai:" + r.Model + "@" + r.Version,
		Change: func(cur *store.Workitem) ([]store.WorklistEvent, []store.NewDelivery, error) {
			actor := "ai:" + r.Model + "@" + r.Version
			cur.Findings = slices.DeleteFunc(cur.Findings, func(f store.WorkitemFinding) bool { return f.Model == r.Model })
			var why []string
			for _, f := range r.Result.Findings {
				cur.Findings = append(cur.Findings, store.WorkitemFinding{
					Model: r.Model, Version: r.Version, Label: f.Label, Meaning: f.Concept.Meaning,
					Probability: f.Probability, Threshold: f.Threshold, Positive: f.Positive, SRUID: r.SRUID,
				})
				if f.Positive {
					why = append(why, fmt.Sprintf("%s %.2f ≥ %.2f", f.Concept.Meaning, f.Probability, f.Threshold))
				}
			}
			evs := []store.WorklistEvent{{Kind: "findings", Actor: actor, To: summary(cur.Findings, r.Model)}}
			want, err := inference.ParsePriority(r.Result.Priority)
			if err != nil {
				want = inference.Routine
			}
			raised := false
			switch {
			case int(want) <= cur.Priority || len(why) == 0:
			case cur.Override:
				evs[0].Reason = "a person set the priority; " + Clinical(want) + " not applied"
			case final(cur.State):
				evs[0].Reason = "workitem " + cur.State + "; " + Clinical(want) + " not applied"
			default:
				evs = append(evs, priorityEvent(cur, want, actor, r.Model+": "+strings.Join(why, "; ")))
				raised = true
			}
			out, err := s.deliveries(*cur, evs, &r)
			if err == nil && raised {
				// Clinical latency: the study's last instance to its
				// raise (observed at the change; a completion that rolls
				// back runs and observes again).
				s.m.raise.WithLabelValues(r.Model).Observe(time.Since(r.Job.ReadyAt).Seconds())
			}
			return evs, out, err
		},
	}
}

// priorityEvent sets cur's priority to p and returns the event.
func priorityEvent(cur *store.Workitem, p inference.Priority, actor, reason string) store.WorklistEvent {
	ev := store.WorklistEvent{Kind: "priority", Actor: actor, From: Clinical(inference.Priority(cur.Priority)), To: Clinical(p), Reason: reason}
	cur.Priority, cur.Reason = int(p), reason
	return ev
}

// summary is the findings of model as one line.
func summary(fs []store.WorkitemFinding, model string) string {
	var parts []string
	for _, f := range fs {
		if f.Model != model {
			continue
		}
		mark := "negative"
		if f.Positive {
			mark = "POSITIVE"
		}
		parts = append(parts, fmt.Sprintf("%s %.2f %s", f.Label, f.Probability, mark))
	}
	return strings.Join(parts, ", ")
}

func final(state string) bool { return state == Completed || state == Canceled }

func (s *Service) deliveries(w store.Workitem, evs []store.WorklistEvent, res *Result) ([]store.NewDelivery, error) {
	var out []store.NewDelivery
	for _, sk := range s.sinks {
		d, err := sk.Deliveries(w, evs, res)
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
}

// Get returns a workitem.
func (s *Service) Get(ctx context.Context, uid string) (store.Workitem, error) {
	w, err := s.wl.Workitem(ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		return w, fmt.Errorf("%w: %s", ErrNotFound, dcm.UIDRef(uid))
	}
	return w, err
}

// OfStudy returns a study's workitem.
func (s *Service) OfStudy(ctx context.Context, studyUID string) (store.Workitem, error) {
	w, err := s.wl.WorkitemOfStudy(ctx, studyUID)
	if errors.Is(err, store.ErrNotFound) {
		return w, fmt.Errorf("%w: of study %s", ErrNotFound, dcm.UIDRef(studyUID))
	}
	return w, err
}

// Search lists workitems, most urgent first.
func (s *Service) Search(ctx context.Context, q store.WorkitemQuery) ([]store.Workitem, error) {
	return s.wl.SearchWorkitems(ctx, q)
}

// Events is one workitem's history.
func (s *Service) Events(ctx context.Context, uid string) ([]store.WorklistEvent, error) {
	return s.wl.WorkitemEvents(ctx, uid)
}

// SetPriority is a person setting a workitem's priority (a radiologist
// taking back an AI raise, or raising one): from then on findings no
// longer change it. actor names who (never a patient's data).
func (s *Service) SetPriority(ctx context.Context, uid string, p inference.Priority, actor, reason string) (store.Workitem, error) {
	if reason == "" {
		reason = "set by " + actor
	}
	return s.update(ctx, uid, func(cur *store.Workitem) ([]store.WorklistEvent, *Result, error) {
		if final(cur.State) {
			return nil, nil, fmt.Errorf("%w: %s", ErrState, cur.State)
		}
		cur.Override = true
		if cur.Priority == int(p) {
			return []store.WorklistEvent{{Kind: "priority", Actor: actor, From: Clinical(p), To: Clinical(p), Reason: reason + " (confirmed)"}}, nil, nil
		}
		return []store.WorklistEvent{priorityEvent(cur, p, actor, reason)}, nil, nil
	})
}

// update runs edit in a transaction with the sinks' deliveries.
func (s *Service) update(ctx context.Context, uid string, edit func(*store.Workitem) ([]store.WorklistEvent, *Result, error)) (store.Workitem, error) {
	w, err := s.wl.UpdateWorkitem(ctx, uid, func(cur *store.Workitem) ([]store.WorklistEvent, []store.NewDelivery, error) {
		evs, res, err := edit(cur)
		if err != nil || len(evs) == 0 {
			return nil, nil, err
		}
		out, err := s.deliveries(*cur, evs, res)
		return evs, out, err
	})
	if errors.Is(err, store.ErrNotFound) {
		return w, fmt.Errorf("%w: %s", ErrNotFound, dcm.UIDRef(uid))
	}
	if err == nil {
		s.changed()
	}
	return w, err
}

type metrics struct {
	raise *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		raise: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_worklist_priority_raise_seconds",
			Help:    "Clinical latency: from a study's last instance to the worklist priority raise its positive finding made, by model.",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600},
		}, []string{"model"}),
	}
	if err := metric.Register(reg, m.raise); err != nil {
		return nil, err
	}
	return m, nil
}
