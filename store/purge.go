package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Retention: a study stays until it is purged, by the retention policy
// once it is settled (Store.Expired lists those due) or on request. A
// purge deletes in one transaction every row about the study (instances,
// series, the study, the patient when no other study names them; its
// activity, jobs, deliveries and workitem) and notes its log records for
// erasure; then the records are erased from the log (Blobs.Erase: marked,
// then punched out) and the segments left with no record referenced are
// deleted. The transaction is committed synchronous=FULL, so that no
// record is erased while the rows that point at it could still come back
// with a power loss; a crash between the commit and the erasure leaves the
// keys in the erasure table, and Open erases them.
//
// What is kept: the worklist's event log (who changed a workitem's
// priority, when, why: it names the workitem UID, no patient) and the
// audit trail, which has its own retention.

// Purged is what a purge deleted.
type Purged struct {
	Instances []Instance // the study's instance records as they were
	Emptied   []uint64   // segments left with no record referenced
}

// inFlightSQL is true for a study (?1) with work in progress
// (ErrInFlight).
const inFlightSQL = `
EXISTS (SELECT 1 FROM study_activity WHERE study_instance_uid = ?1 AND last_seq > evaluated_seq)
OR EXISTS (SELECT 1 FROM job WHERE study_instance_uid = ?1 AND state IN ('queued', 'running'))
OR EXISTS (SELECT 1 FROM outbox WHERE study_instance_uid = ?1 AND state = 'pending')
OR EXISTS (SELECT 1 FROM workitem WHERE study_instance_uid = ?1 AND state = 'IN PROGRESS')`

// settledSQL selects the studies settled before ?1 (nanoseconds): every
// instance evaluated, and nothing about them (arrival, evaluation, jobs,
// deliveries, workitem) changed since, nor in progress. A workitem still
// SCHEDULED does not hold its study: its priority was delivered to the
// worklist, and reading it is the radiologist's work, not radgate's (which
// may never hear that it was done); one IN PROGRESS does.
const settledSQL = `
FROM study_activity a
WHERE a.last_seq <= a.evaluated_seq AND a.last_received_at < ?1 AND a.evaluated_at < ?1
AND NOT EXISTS (SELECT 1 FROM job j WHERE j.study_instance_uid = a.study_instance_uid
	AND (j.state IN ('queued', 'running') OR j.updated_at >= ?1))
AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.study_instance_uid = a.study_instance_uid
	AND (o.state = 'pending' OR o.updated_at >= ?1))
AND NOT EXISTS (SELECT 1 FROM workitem w WHERE w.study_instance_uid = a.study_instance_uid
	AND (w.state = 'IN PROGRESS' OR w.updated_at >= ?1))`

// deadSQL holds a settled study back: one of its deliveries gave up.
const deadSQL = `EXISTS (SELECT 1 FROM outbox o WHERE o.study_instance_uid = a.study_instance_uid AND o.state = 'dead')`

// SettledStudies implements Index.
func (x *SQLiteIndex) SettledStudies(ctx context.Context, before time.Time, limit int) (due []string, held int, err error) {
	due, err = x.column(ctx, "settled studies", `SELECT a.study_instance_uid `+settledSQL+` AND NOT `+deadSQL+`
ORDER BY a.evaluated_at LIMIT ?2`, nanos(before), limit)
	if err != nil {
		return nil, 0, err
	}
	if err := x.r.QueryRowContext(ctx, `SELECT count(*) `+settledSQL+` AND `+deadSQL, nanos(before)).Scan(&held); err != nil {
		return nil, 0, fmt.Errorf("store: settled studies: %w", err)
	}
	return due, held, nil
}

// PurgeStudy implements Index.
func (x *SQLiteIndex) PurgeStudy(ctx context.Context, studyInstanceUID string) (p Purged, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	conn, err := x.w.Conn(ctx)
	if err != nil {
		return Purged{}, fmt.Errorf("store: purge: %w", err)
	}
	defer conn.Close()
	// FULL for this commit only (see Retention); the writer is this one
	// connection, held until it is back to NORMAL.
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = FULL"); err != nil {
		return Purged{}, fmt.Errorf("store: purge: %w", err)
	}
	defer func() {
		if _, e := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = NORMAL"); e != nil && err == nil {
			err = fmt.Errorf("store: purge: %w", e)
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return Purged{}, fmt.Errorf("store: purge: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			p = Purged{}
		}
	}()
	if p, err = purgeStudy(ctx, tx, studyInstanceUID); err != nil {
		return Purged{}, err
	}
	if err = tx.Commit(); err != nil {
		return Purged{}, fmt.Errorf("store: purge: %w", err)
	}
	// Patient, study and series rows are gone: the next Apply looks them
	// up again.
	x.levels = levelPKs{}
	return p, nil
}

func purgeStudy(ctx context.Context, tx *sql.Tx, uid string) (Purged, error) {
	var busy bool
	if err := tx.QueryRowContext(ctx, `SELECT `+inFlightSQL, uid).Scan(&busy); err != nil {
		return Purged{}, fmt.Errorf("store: purge: %w", err)
	}
	if busy {
		return Purged{}, ErrInFlight
	}
	ins, err := studyInstances(ctx, tx, uid)
	if err != nil {
		return Purged{}, err
	}
	var studyPK, patientPK int64
	err = tx.QueryRowContext(ctx, `SELECT pk, patient_pk FROM study WHERE study_instance_uid = ?`, uid).Scan(&studyPK, &patientPK)
	if errors.Is(err, sql.ErrNoRows) {
		return Purged{}, ErrNotFound
	}
	if err != nil {
		return Purged{}, fmt.Errorf("store: purge: %w", err)
	}
	perSeg := map[uint64]int64{}
	for _, in := range ins {
		id, _, _, _ := parseKey(in.BlobKey)
		perSeg[id]++
		if _, err := tx.ExecContext(ctx, `INSERT INTO erasure (blob_key) VALUES (?) ON CONFLICT DO NOTHING`, in.BlobKey); err != nil {
			return Purged{}, fmt.Errorf("store: purge: %w", err)
		}
	}
	for _, d := range []struct {
		q   string
		arg any
	}{
		{`DELETE FROM instance WHERE series_pk IN (SELECT pk FROM series WHERE study_pk = ?)`, studyPK},
		{`DELETE FROM series WHERE study_pk = ?`, studyPK},
		{`DELETE FROM study WHERE pk = ?`, studyPK},
		{`DELETE FROM patient WHERE pk = ?1 AND NOT EXISTS (SELECT 1 FROM study WHERE patient_pk = ?1)`, patientPK},
		{`DELETE FROM outbox WHERE study_instance_uid = ?`, uid},
		{`DELETE FROM job WHERE study_instance_uid = ?`, uid},
		{`DELETE FROM study_activity WHERE study_instance_uid = ?`, uid},
		{`DELETE FROM workitem WHERE study_instance_uid = ?`, uid},
	} {
		if _, err := tx.ExecContext(ctx, d.q, d.arg); err != nil {
			return Purged{}, fmt.Errorf("store: purge: %w", err)
		}
	}
	p := Purged{Instances: ins}
	ids := make([]uint64, 0, len(perSeg))
	for id := range perSeg {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var live int64
		if err := tx.QueryRowContext(ctx, `UPDATE segment SET live = live - ? WHERE id = ? RETURNING live`,
			perSeg[id], int64(id)).Scan(&live); err != nil {
			return Purged{}, fmt.Errorf("store: purge: segment: %w", err)
		}
		if live == 0 {
			p.Emptied = append(p.Emptied, id)
		}
	}
	return p, nil
}

// Erasures implements Index.
func (x *SQLiteIndex) Erasures(ctx context.Context) ([]string, error) {
	return x.column(ctx, "erasures", `SELECT blob_key FROM erasure ORDER BY blob_key`)
}

// Erased implements Index.
func (x *SQLiteIndex) Erased(ctx context.Context, keys []string) error {
	return x.inTx(ctx, "erased", func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `DELETE FROM erasure WHERE blob_key = ?`, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Expired lists up to limit studies the retention policy purges now: those
// settled (every instance evaluated; no job queued or running, no delivery
// pending, no workitem IN PROGRESS; nothing of that changed since) before before,
// oldest first. held counts the settled studies kept although due, because
// a delivery of their results gave up: their results were not delivered.
func (s *Store) Expired(ctx context.Context, before time.Time, limit int) (due []string, held int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, 0, ErrClosed
	}
	due, held, err = s.index.SettledStudies(ctx, before, limit)
	if err == nil {
		s.m.held.Set(float64(held))
	}
	return due, held, err
}

// Purge deletes a study: its rows, its instances' log records (erased) and
// the segments that leaves unreferenced. It returns the instance records
// deleted, or ErrNotFound, or ErrInFlight while radgate has work for the
// study in progress (including instances acknowledged and not yet
// indexed). An instance of the study received after the purge starts the
// study again.
func (s *Store) Purge(ctx context.Context, studyInstanceUID string) ([]Instance, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.ix.holdsStudy(studyInstanceUID) {
		return nil, ErrInFlight
	}
	p, err := s.index.PurgeStudy(ctx, studyInstanceUID)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(p.Instances))
	for i, in := range p.Instances {
		keys[i] = in.BlobKey
	}
	// Committed: the erasure is finished even if the caller goes away.
	ctx = context.WithoutCancel(ctx)
	s.erase(ctx, keys)
	s.reclaim(ctx, s.ix.reclaimable(p.Emptied))
	s.m.purgedStudies.Inc()
	s.m.purgedInstances.Add(float64(len(p.Instances)))
	return p.Instances, nil
}

// erase erases purged records from the log and then forgets their keys. A
// record a reader still has open (OpenBlob) is left to that reader's
// Close, so that no reader ever meets erased bytes. A failure is logged and
// left to the next Open, which erases what the erasure table still lists.
func (s *Store) erase(ctx context.Context, keys []string) {
	keys = s.open.doom(keys)
	if len(keys) == 0 {
		return
	}
	err := s.blobs.Erase(ctx, keys)
	if err == nil {
		err = s.index.Erased(ctx, keys)
	}
	if err != nil {
		s.log.Warn("store: erasing purged records failed; retried at next start", "records", len(keys), "err", err)
	}
}

// openBlobs counts the readers of each blob OpenBlob handed out, and the
// blobs purged while read, erased when their last reader closes.
type openBlobs struct {
	mu     sync.Mutex
	n      map[string]int
	doomed map[string]bool
}

func (o *openBlobs) opened(key string) {
	o.mu.Lock()
	if o.n == nil {
		o.n, o.doomed = map[string]int{}, map[string]bool{}
	}
	o.n[key]++
	o.mu.Unlock()
}

// closed reports whether key was the last reader of a doomed blob: the
// caller erases it.
func (o *openBlobs) closed(key string) (erase bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n[key]--; o.n[key] > 0 {
		return false
	}
	delete(o.n, key)
	erase = o.doomed[key]
	delete(o.doomed, key)
	return erase
}

// doom returns the keys no reader has open; the others are erased by
// their last reader's Close.
func (o *openBlobs) doom(keys []string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	free := keys[:0:0]
	for _, k := range keys {
		if o.n[k] > 0 {
			o.doomed[k] = true
		} else {
			free = append(free, k)
		}
	}
	return free
}

// blobReader is a blob OpenBlob handed out.
type blobReader struct {
	io.ReadCloser
	s    *Store
	key  string
	once sync.Once
}

func (r *blobReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() {
		if r.s.open.closed(r.key) {
			r.s.eraseClosed(r.key)
		}
	})
	return err
}

// eraseClosed erases a purged record its last reader closed, unless the
// Store is closed (the next Open erases it).
func (s *Store) eraseClosed(key string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		s.erase(context.Background(), []string{key})
	}
}
