package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/store"
)

// retentionBatch is how many due studies one listing returns.
const retentionBatch = 100

// retentionEvery is how often retention looks for due studies: a tenth of
// the retention period, between a second and a minute.
func retentionEvery(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Minute)
}

// retention purges, until ctx ends, every study settled longer than
// study_retention ago (store.Store.Expired), audited as DICOM Study
// Deleted by radgate's retention. With study_retention 0 it does nothing.
func (g *Gateway) retention(ctx context.Context) error {
	if g.cfg.StudyRetention <= 0 {
		return nil
	}
	tick := time.NewTicker(retentionEvery(g.cfg.StudyRetention))
	defer tick.Stop()
	held := 0
	for {
		held = g.purgeDue(ctx, held)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// purgeDue purges what is due now. It says when the number of studies held
// back (a delivery of their results gave up) changes from wasHeld, and
// returns it.
func (g *Gateway) purgeDue(ctx context.Context, wasHeld int) int {
	by := audit.Node{ID: g.cfg.AETitle + " retention", Alt: g.self().Alt}
	for {
		due, held, err := g.store.Expired(ctx, time.Now().Add(-g.cfg.StudyRetention), retentionBatch)
		if err != nil {
			if ctx.Err() == nil {
				g.log.Error("retention: listing due studies failed; retried", "err", err)
			}
			return wasHeld
		}
		if held != wasHeld && held > 0 {
			g.log.Warn("retention: studies due for purge are kept because a delivery of their results gave up; see radgate_outbox{state=\"dead\"}; once handled, an administrator deletes them (DELETE /dicomweb/studies/{study})", "studies", held)
		}
		wasHeld = held
		purged := 0
		for _, uid := range due {
			_, err := g.ingest.Purge(ctx, uid, by, audit.Node{})
			switch {
			case err == nil:
				purged++
			case errors.Is(err, store.ErrInFlight), errors.Is(err, store.ErrNotFound):
				// Work started again since the listing, or another purge won.
			case ctx.Err() != nil:
				return held
			default:
				g.log.Error("retention: purge failed; retried", "study", dcm.UIDRef(uid), "err", err)
			}
		}
		if len(due) < retentionBatch || purged == 0 {
			return held
		}
	}
}
