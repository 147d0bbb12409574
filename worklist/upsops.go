package worklist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// The UPS operations (PS3.4 CC.2) as UPS-RS carries them (PS3.18 11):
// create (N-CREATE), update (N-SET), change state (N-ACTION 1), request
// cancellation (N-ACTION 2). actor names the caller for the log.

// Create adds a workitem from a UPS-RS create request; uid is the
// request's workitem parameter (or "" to take the data set's SOP Instance
// UID).
func (s *Service) Create(ctx context.Context, uid string, d dicomjson.Dataset, actor string) (store.Workitem, error) {
	w, err := fromDataset(uid, d)
	if err != nil {
		return store.Workitem{}, err
	}
	out, err := s.deliveries(w, []store.WorklistEvent{{Kind: "created", Actor: actor, To: w.State}}, nil)
	if err != nil {
		return store.Workitem{}, err
	}
	created, err := s.wl.CreateWorkitem(ctx, w, actor, out...)
	if errors.Is(err, store.ErrExists) {
		return created, fmt.Errorf("%w: %s (or its study's)", ErrExists, dcm.UIDRef(w.UID))
	}
	if err == nil {
		s.changed()
	}
	return created, err
}

// Update sets attributes of a workitem (N-SET): not its state or UIDs;
// while IN PROGRESS only with the performer's Transaction UID; never
// once final. A new Scheduled Procedure Step Priority is a person's
// setting, as SetPriority.
func (s *Service) Update(ctx context.Context, uid, transactionUID string, d dicomjson.Dataset, actor string) (store.Workitem, error) {
	d = maps.Clone(d)
	for _, t := range []uint32{tagSOPClassUID, tagSOPInstanceUID, tagProcedureStepState, tagTransactionUID} {
		if _, ok := d[dicomjson.Key(t)]; ok {
			return store.Workitem{}, fmt.Errorf("%w: (%04X,%04X) cannot be set by an update", ErrInvalid, t>>16, t&0xFFFF)
		}
	}
	var newPri *inference.Priority
	if a, ok := d[dicomjson.Key(tagSPSPriority)]; ok {
		p, err := ParseUPSPriority(value(d, tagSPSPriority))
		if err != nil || a.VR != "CS" {
			return store.Workitem{}, fmt.Errorf("%w: Scheduled Procedure Step Priority: %v", ErrInvalid, err)
		}
		newPri = &p
		delete(d, dicomjson.Key(tagSPSPriority))
	}
	return s.update(ctx, uid, func(cur *store.Workitem) ([]store.WorklistEvent, *Result, error) {
		if err := mayChange(cur, transactionUID); err != nil {
			return nil, nil, err
		}
		var evs []store.WorklistEvent
		if len(d) > 0 {
			have := dicomjson.Dataset{}
			if err := json.Unmarshal(cur.Dataset, &have); err != nil {
				return nil, nil, err
			}
			for k, a := range d {
				have[k] = a
			}
			cur.Dataset, _ = json.Marshal(have)
			if l := value(have, tagProcedureStepLabel); l != "" {
				cur.Description = l
			}
			evs = append(evs, store.WorklistEvent{Kind: "updated", Actor: actor, Reason: fmt.Sprintf("%d attributes", len(d))})
		}
		if newPri != nil && UPSPriority(*newPri) != UPSPriority(inference.Priority(cur.Priority)) {
			cur.Override = true
			evs = append(evs, priorityEvent(cur, *newPri, actor, "set over UPS-RS by "+actor))
		}
		return evs, nil, nil
	})
}

// mayChange: a final workitem is never changed; an IN PROGRESS one only
// by its performer.
func mayChange(cur *store.Workitem, transactionUID string) error {
	switch {
	case final(cur.State):
		return fmt.Errorf("%w: the workitem is %s", ErrState, cur.State)
	case cur.State == InProgress && transactionUID != cur.TransactionUID:
		return fmt.Errorf("%w: the workitem is IN PROGRESS", ErrTransaction)
	}
	return nil
}

// ChangeState moves a workitem (N-ACTION Change UPS State, PS3.4
// CC.1.1): SCHEDULED → IN PROGRESS takes the performer's new Transaction
// UID; IN PROGRESS → COMPLETED or CANCELED needs it.
func (s *Service) ChangeState(ctx context.Context, uid, state, transactionUID, actor string) (store.Workitem, error) {
	if transactionUID == "" {
		return store.Workitem{}, fmt.Errorf("%w: a state change needs a Transaction UID (0008,1195)", ErrTransaction)
	}
	return s.update(ctx, uid, func(cur *store.Workitem) ([]store.WorklistEvent, *Result, error) {
		from := cur.State
		switch {
		case from == Scheduled && state == InProgress:
			cur.TransactionUID = transactionUID
		case from == InProgress && (state == Completed || state == Canceled):
			if transactionUID != cur.TransactionUID {
				return nil, nil, fmt.Errorf("%w: not the performer's", ErrTransaction)
			}
		case from == state && from == InProgress && transactionUID == cur.TransactionUID:
			return nil, nil, nil // already so (PS3.4 CC.2.1.3: a warning, no change)
		case final(from):
			return nil, nil, fmt.Errorf("%w: the workitem is already %s", ErrState, from)
		default:
			return nil, nil, fmt.Errorf("%w: %s to %s", ErrState, from, state)
		}
		cur.State = state
		return []store.WorklistEvent{{Kind: "state", Actor: actor, From: from, To: state}}, nil, nil
	})
}

// RequestCancel asks to cancel a workitem (N-ACTION Request
// Cancellation): a SCHEDULED one is canceled at once; an IN PROGRESS one
// is its performer's to cancel, so the request is logged for it.
func (s *Service) RequestCancel(ctx context.Context, uid, reason, actor string) (store.Workitem, error) {
	return s.update(ctx, uid, func(cur *store.Workitem) ([]store.WorklistEvent, *Result, error) {
		switch cur.State {
		case Scheduled:
			cur.State = Canceled
			return []store.WorklistEvent{{Kind: "state", Actor: actor, From: Scheduled, To: Canceled, Reason: reason}}, nil, nil
		case InProgress:
			return []store.WorklistEvent{{Kind: "cancel-requested", Actor: actor, Reason: reason}}, nil, nil
		}
		return nil, nil, fmt.Errorf("%w: the workitem is already %s", ErrState, cur.State)
	})
}
