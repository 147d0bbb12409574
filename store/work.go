package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Work is what follows an instance, kept in the index so that a restart
// resumes it: per study how far its instances have been evaluated (study
// assembly), the inference jobs an evaluation created, and the outbox of
// deliveries their results became. Every change is one transaction, so a
// job's result and its deliveries appear together or not at all.
//
// Commits are synchronous=NORMAL, like the instance rows: a power loss may
// roll back the last ones. That loses nothing, because every step is
// idempotent: a study whose evaluation rolled back is evaluated again; a
// job whose completion rolled back runs again and, its UIDs being derived
// from (study, model version, revision), yields the same objects; a
// delivery whose success rolled back is sent again under the same SOP
// Instance UID, which a PACS stores once.
//
// A single radgate owns its index, so jobs and deliveries are claimed in
// process; a PostgreSQL Work shared by replicas claims them with FOR
// UPDATE SKIP LOCKED instead.
type Work interface {
	// PendingStudies lists the studies with instances indexed since their
	// last evaluation, oldest silence first.
	PendingStudies(ctx context.Context) ([]StudyActivity, error)
	// StudyInstances returns the current record of every instance of a
	// study, by series then instance number.
	StudyInstances(ctx context.Context, studyInstanceUID string) ([]Instance, error)
	// Evaluate records an evaluation of a study covering its instances up
	// to throughSeq, and creates its jobs, in one transaction. A job whose
	// Digest equals the newest job's for the same study and model is not
	// created (nothing changed for that model); otherwise it gets the next
	// revision. Its effects (a notification that the study is complete,
	// belonging to no job; the study's workitem) are made in the same
	// transaction. It returns the jobs created.
	Evaluate(ctx context.Context, studyInstanceUID string, throughSeq uint64, outcome string, jobs []NewJob, fx Effects) ([]Job, error)

	// ClaimJob takes the most urgent queued job that is due (highest
	// priority, then oldest) and marks it running; ok is false when none is.
	ClaimJob(ctx context.Context, now time.Time) (j Job, ok bool, err error)
	// CompleteJob records a job's result and makes its effects: its
	// deliveries queued (a delivery of an object already queued for a
	// destination is not queued again), its study's workitem changed.
	CompleteJob(ctx context.Context, id int64, modelVersion string, result []byte, fx Effects) error
	// RetryJob puts a running job back in the queue, due at notBefore.
	RetryJob(ctx context.Context, id int64, notBefore time.Time, reason string) error
	// FailJob ends a job that will not succeed.
	FailJob(ctx context.Context, id int64, reason string) error
	// RequeueRunning puts back the jobs a stopped process left running.
	RequeueRunning(ctx context.Context) (int64, error)
	// Job returns one job.
	Job(ctx context.Context, id int64) (Job, error)
	// Jobs lists a study's jobs, oldest first.
	Jobs(ctx context.Context, studyInstanceUID string) ([]Job, error)

	// DueDeliveries returns up to limit pending deliveries to destination
	// that are due at now, oldest first.
	DueDeliveries(ctx context.Context, destination string, now time.Time, limit int) ([]Delivery, error)
	// NextDelivery is when the next pending delivery to destination is
	// due; ok is false when there is none.
	NextDelivery(ctx context.Context, destination string) (at time.Time, ok bool, err error)
	// PendingDestinations lists the destinations with pending deliveries.
	PendingDestinations(ctx context.Context) ([]string, error)
	// Delivered, RetryDelivery and DeadDelivery record an attempt's end.
	Delivered(ctx context.Context, id int64, at time.Time) error
	RetryDelivery(ctx context.Context, id int64, next time.Time, reason string) error
	DeadDelivery(ctx context.Context, id int64, reason string) error
	// Deliveries lists the deliveries of a job (0: those of no job).
	Deliveries(ctx context.Context, jobID int64) ([]Delivery, error)

	// WorkCounts counts jobs and deliveries by state.
	WorkCounts(ctx context.Context) (WorkCounts, error)
}

// Effects are what an evaluation or a job's completion makes beside its
// own rows, in the same transaction.
type Effects struct {
	Deliveries []NewDelivery
	Workitem   *WorkitemChange // nil: none
}

// StudyActivity is a study's arrival state.
type StudyActivity struct {
	StudyInstanceUID string
	LastSeq          uint64    // the newest instance record of the study
	LastReceivedAt   time.Time // when the newest instance arrived
	EvaluatedSeq     uint64    // LastSeq as of the last evaluation (0: never)
}

// JobState is where a job is.
type JobState string

// Job states.
const (
	JobQueued  JobState = "queued"
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// NewJob is a job an evaluation asks for.
type NewJob struct {
	Model        string   // model name (the newest version loaded runs)
	Route        string   // the routing rule that chose it
	Priority     int      // inference priority (higher first)
	Series       []string // Series Instance UIDs it reads
	Destinations []string // where its results go
	// Digest identifies its input (the instances of its series, as
	// stored): an unchanged digest creates no new revision.
	Digest  string
	ReadyAt time.Time // the study's last arrival: end-to-end latency starts here
}

// Job is an inference job.
type Job struct {
	ID               int64
	StudyInstanceUID string
	Model            string
	ModelVersion     string // the version that ran ("" until done)
	Revision         int    // 1 for a study's first result from this model; more after late instances
	Route            string
	Priority         int
	Series           []string
	Destinations     []string
	Digest           string
	State            JobState
	Attempts         int
	NotBefore        time.Time
	ReadyAt          time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	Result           []byte // the result (JSON) once done
	Error            string // why it failed or was retried
}

// DeliveryState is where a delivery is.
type DeliveryState string

// Delivery states.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryDead      DeliveryState = "dead" // gave up after the maximum of attempts, or refused for good
)

// NewDelivery is an object to send.
type NewDelivery struct {
	Destination string
	Kind        string // what it is: "sr", "kos"
	ObjectUID   string // its SOP Instance UID: one per destination
	SOPClassUID string
	Payload     []byte // a Part 10 file
	ReadyAt     time.Time
}

// Delivery is an outbox row.
type Delivery struct {
	ID               int64
	JobID            int64  // 0: of no job
	StudyInstanceUID string // the study it is about ("": none)
	Destination      string
	Kind             string
	ObjectUID        string
	SOPClassUID      string
	Payload          []byte
	State            DeliveryState
	Attempts         int // attempts made before this one
	NextAt           time.Time
	ReadyAt          time.Time
	CreatedAt        time.Time
	DeliveredAt      time.Time
	LastError        string
}

// WorkCounts are the jobs and deliveries by state.
type WorkCounts struct {
	Jobs       map[JobState]int64
	Deliveries map[DeliveryState]int64
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// PendingStudies implements Work.
func (x *SQLiteIndex) PendingStudies(ctx context.Context) ([]StudyActivity, error) {
	rows, err := x.r.QueryContext(ctx, `
SELECT study_instance_uid, last_seq, last_received_at, evaluated_seq FROM study_activity
WHERE last_seq > evaluated_seq ORDER BY last_received_at`)
	if err != nil {
		return nil, fmt.Errorf("store: pending studies: %w", err)
	}
	defer rows.Close()
	var out []StudyActivity
	for rows.Next() {
		var a StudyActivity
		var last, at, eval int64
		if err := rows.Scan(&a.StudyInstanceUID, &last, &at, &eval); err != nil {
			return nil, fmt.Errorf("store: pending studies: %w", err)
		}
		a.LastSeq, a.LastReceivedAt, a.EvaluatedSeq = uint64(last), fromNanos(at), uint64(eval)
		out = append(out, a)
	}
	return out, rows.Err()
}

// StudyInstances implements Work.
func (x *SQLiteIndex) StudyInstances(ctx context.Context, studyInstanceUID string) ([]Instance, error) {
	return studyInstances(ctx, x.r, studyInstanceUID)
}

// studyInstances is StudyInstances on db, the readers or a transaction.
func studyInstances(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, studyInstanceUID string) ([]Instance, error) {
	q := lookupSQL[:len(lookupSQL)-len("WHERE i.sop_instance_uid = ?")] +
		"WHERE st.study_instance_uid = ? ORDER BY se.series_instance_uid, i.instance_number, i.sop_instance_uid"
	rows, err := db.QueryContext(ctx, q, studyInstanceUID)
	if err != nil {
		return nil, fmt.Errorf("store: study instances: %w", err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("store: study instances: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// Evaluate implements Work.
func (x *SQLiteIndex) Evaluate(ctx context.Context, studyInstanceUID string, throughSeq uint64, outcome string, jobs []NewJob, fx Effects) (created []Job, err error) {
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: evaluate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			created = nil
		}
	}()
	now := time.Now()
	for _, nj := range jobs {
		var digest string
		var rev int
		err = tx.QueryRowContext(ctx, `SELECT digest, revision FROM job WHERE study_instance_uid = ? AND model = ?
ORDER BY revision DESC LIMIT 1`, studyInstanceUID, nj.Model).Scan(&digest, &rev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: evaluate: %w", err)
		}
		if err == nil && digest == nj.Digest {
			continue
		}
		err = nil
		series, _ := json.Marshal(nj.Series)
		dests, _ := json.Marshal(nj.Destinations)
		var id int64
		if err = tx.QueryRowContext(ctx, `
INSERT INTO job (study_instance_uid, model, revision, route, priority, series, destinations, digest, state,
	not_before, ready_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			studyInstanceUID, nj.Model, rev+1, nj.Route, nj.Priority, string(series), string(dests), nj.Digest,
			string(JobQueued), nanos(now), nanos(nj.ReadyAt), nanos(now), nanos(now)).Scan(&id); err != nil {
			return nil, fmt.Errorf("store: evaluate: %w", err)
		}
		created = append(created, Job{
			ID: id, StudyInstanceUID: studyInstanceUID, Model: nj.Model, Revision: rev + 1, Route: nj.Route,
			Priority: nj.Priority, Series: nj.Series, Destinations: nj.Destinations, Digest: nj.Digest,
			State: JobQueued, NotBefore: now, ReadyAt: nj.ReadyAt, CreatedAt: now, UpdatedAt: now,
		})
	}
	if err = queueDeliveries(ctx, tx, 0, studyInstanceUID, fx.Deliveries); err != nil {
		return nil, err
	}
	if err = applyWorkitemChange(ctx, tx, fx.Workitem); err != nil {
		return nil, err
	}
	if _, err = tx.ExecContext(ctx, `UPDATE study_activity SET evaluated_seq = max(evaluated_seq, ?), evaluated_at = ?,
	outcome = ? WHERE study_instance_uid = ?`, int64(throughSeq), nanos(now), outcome, studyInstanceUID); err != nil {
		return nil, fmt.Errorf("store: evaluate: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: evaluate: %w", err)
	}
	return created, nil
}

const jobColumns = `id, study_instance_uid, model, model_version, revision, route, priority, series, destinations,
	digest, state, attempts, not_before, ready_at, created_at, updated_at, result, error`

type scanner interface{ Scan(dest ...any) error }

func scanJob(s scanner) (Job, error) {
	var j Job
	var series, dests, state string
	var notBefore, ready, created, updated int64
	if err := s.Scan(&j.ID, &j.StudyInstanceUID, &j.Model, &j.ModelVersion, &j.Revision, &j.Route, &j.Priority,
		&series, &dests, &j.Digest, &state, &j.Attempts, &notBefore, &ready, &created, &updated, &j.Result, &j.Error); err != nil {
		return Job{}, err
	}
	j.State = JobState(state)
	j.NotBefore, j.ReadyAt, j.CreatedAt, j.UpdatedAt = fromNanos(notBefore), fromNanos(ready), fromNanos(created), fromNanos(updated)
	if err := json.Unmarshal([]byte(series), &j.Series); err != nil {
		return Job{}, fmt.Errorf("job %d series: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(dests), &j.Destinations); err != nil {
		return Job{}, fmt.Errorf("job %d destinations: %w", j.ID, err)
	}
	return j, nil
}

// ClaimJob implements Work.
func (x *SQLiteIndex) ClaimJob(ctx context.Context, now time.Time) (Job, bool, error) {
	j, err := scanJob(x.w.QueryRowContext(ctx, `
UPDATE job SET state = ?, attempts = attempts + 1, updated_at = ?
WHERE id = (SELECT id FROM job WHERE state = ? AND not_before <= ? ORDER BY priority DESC, not_before, id LIMIT 1)
RETURNING `+jobColumns, string(JobRunning), nanos(now), string(JobQueued), nanos(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("store: claim job: %w", err)
	}
	return j, true, nil
}

// CompleteJob implements Work.
func (x *SQLiteIndex) CompleteJob(ctx context.Context, id int64, modelVersion string, result []byte, fx Effects) (err error) {
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: complete job: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	now := nanos(time.Now())
	var study string
	if err = tx.QueryRowContext(ctx, `UPDATE job SET state = ?, model_version = ?, result = ?, error = '', updated_at = ? WHERE id = ?
RETURNING study_instance_uid`, string(JobDone), modelVersion, result, now, id).Scan(&study); err != nil {
		return fmt.Errorf("store: complete job: %w", err)
	}
	if err = queueDeliveries(ctx, tx, id, study, fx.Deliveries); err != nil {
		return err
	}
	if err = applyWorkitemChange(ctx, tx, fx.Workitem); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: complete job: %w", err)
	}
	return nil
}

// queueDeliveries inserts deliveries of a job (0: of none) about a study
// ("": of none) in tx; an object already queued for a destination is not
// queued again.
func queueDeliveries(ctx context.Context, tx *sql.Tx, jobID int64, study string, out []NewDelivery) error {
	now := nanos(time.Now())
	for _, d := range out {
		if _, err := tx.ExecContext(ctx, `
INSERT INTO outbox (job_id, study_instance_uid, destination, kind, object_uid, sop_class_uid, payload, state, next_at,
	ready_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination, object_uid) DO NOTHING`,
			jobID, study, d.Destination, d.Kind, d.ObjectUID, d.SOPClassUID, d.Payload, string(DeliveryPending), now,
			nanos(d.ReadyAt), now, now); err != nil {
			return fmt.Errorf("store: queue delivery: %w", err)
		}
	}
	return nil
}

// RetryJob implements Work.
func (x *SQLiteIndex) RetryJob(ctx context.Context, id int64, notBefore time.Time, reason string) error {
	return x.exec(ctx, "retry job", `UPDATE job SET state = ?, not_before = ?, error = ?, updated_at = ? WHERE id = ?`,
		string(JobQueued), nanos(notBefore), reason, nanos(time.Now()), id)
}

// FailJob implements Work.
func (x *SQLiteIndex) FailJob(ctx context.Context, id int64, reason string) error {
	return x.exec(ctx, "fail job", `UPDATE job SET state = ?, error = ?, updated_at = ? WHERE id = ?`,
		string(JobFailed), reason, nanos(time.Now()), id)
}

// RequeueRunning implements Work.
func (x *SQLiteIndex) RequeueRunning(ctx context.Context) (int64, error) {
	res, err := x.w.ExecContext(ctx, `UPDATE job SET state = ?, updated_at = ? WHERE state = ?`,
		string(JobQueued), nanos(time.Now()), string(JobRunning))
	if err != nil {
		return 0, fmt.Errorf("store: requeue jobs: %w", err)
	}
	return res.RowsAffected()
}

// Job implements Work.
func (x *SQLiteIndex) Job(ctx context.Context, id int64) (Job, error) {
	j, err := scanJob(x.r.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM job WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("%w: job %d", ErrNotFound, id)
	}
	if err != nil {
		return Job{}, fmt.Errorf("store: job: %w", err)
	}
	return j, nil
}

// Jobs implements Work.
func (x *SQLiteIndex) Jobs(ctx context.Context, studyInstanceUID string) ([]Job, error) {
	rows, err := x.r.QueryContext(ctx, `SELECT `+jobColumns+` FROM job WHERE study_instance_uid = ? ORDER BY id`, studyInstanceUID)
	if err != nil {
		return nil, fmt.Errorf("store: jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("store: jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

const deliveryColumns = `id, job_id, study_instance_uid, destination, kind, object_uid, sop_class_uid, payload, state, attempts,
	next_at, ready_at, created_at, delivered_at, last_error`

func (x *SQLiteIndex) deliveries(ctx context.Context, query string, args ...any) ([]Delivery, error) {
	rows, err := x.r.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM outbox `+query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var state string
		var next, ready, created, delivered int64
		if err := rows.Scan(&d.ID, &d.JobID, &d.StudyInstanceUID, &d.Destination, &d.Kind, &d.ObjectUID, &d.SOPClassUID, &d.Payload,
			&state, &d.Attempts, &next, &ready, &created, &delivered, &d.LastError); err != nil {
			return nil, fmt.Errorf("store: outbox: %w", err)
		}
		d.State = DeliveryState(state)
		d.NextAt, d.ReadyAt, d.CreatedAt, d.DeliveredAt = fromNanos(next), fromNanos(ready), fromNanos(created), fromNanos(delivered)
		out = append(out, d)
	}
	return out, rows.Err()
}

// DueDeliveries implements Work.
func (x *SQLiteIndex) DueDeliveries(ctx context.Context, destination string, now time.Time, limit int) ([]Delivery, error) {
	return x.deliveries(ctx, `WHERE destination = ? AND state = ? AND next_at <= ? ORDER BY next_at, id LIMIT ?`,
		destination, string(DeliveryPending), nanos(now), limit)
}

// Deliveries implements Work.
func (x *SQLiteIndex) Deliveries(ctx context.Context, jobID int64) ([]Delivery, error) {
	return x.deliveries(ctx, `WHERE job_id = ? ORDER BY id`, jobID)
}

// NextDelivery implements Work.
func (x *SQLiteIndex) NextDelivery(ctx context.Context, destination string) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := x.r.QueryRowContext(ctx, `SELECT MIN(next_at) FROM outbox WHERE destination = ? AND state = ?`,
		destination, string(DeliveryPending)).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("store: outbox: %w", err)
	}
	return fromNanos(next.Int64), next.Valid, nil
}

// PendingDestinations implements Work.
func (x *SQLiteIndex) PendingDestinations(ctx context.Context) ([]string, error) {
	return x.column(ctx, "outbox", `SELECT DISTINCT destination FROM outbox WHERE state = ? ORDER BY destination`, string(DeliveryPending))
}

// column runs a query of one text column on the readers and returns its
// values; what names it in errors.
func (x *SQLiteIndex) column(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := x.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// Delivered implements Work.
func (x *SQLiteIndex) Delivered(ctx context.Context, id int64, at time.Time) error {
	return x.exec(ctx, "delivered", `UPDATE outbox SET state = ?, attempts = attempts + 1, delivered_at = ?, last_error = '',
	updated_at = ? WHERE id = ?`, string(DeliveryDelivered), nanos(at), nanos(time.Now()), id)
}

// RetryDelivery implements Work.
func (x *SQLiteIndex) RetryDelivery(ctx context.Context, id int64, next time.Time, reason string) error {
	return x.exec(ctx, "retry delivery", `UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ?,
	updated_at = ? WHERE id = ?`, nanos(next), reason, nanos(time.Now()), id)
}

// DeadDelivery implements Work.
func (x *SQLiteIndex) DeadDelivery(ctx context.Context, id int64, reason string) error {
	return x.exec(ctx, "dead delivery", `UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ?,
	updated_at = ? WHERE id = ?`, string(DeliveryDead), reason, nanos(time.Now()), id)
}

// WorkCounts implements Work.
func (x *SQLiteIndex) WorkCounts(ctx context.Context) (WorkCounts, error) {
	c := WorkCounts{Jobs: map[JobState]int64{}, Deliveries: map[DeliveryState]int64{}}
	for _, q := range []struct {
		sql string
		put func(string, int64)
	}{
		{`SELECT state, COUNT(*) FROM job GROUP BY state`, func(s string, n int64) { c.Jobs[JobState(s)] = n }},
		{`SELECT state, COUNT(*) FROM outbox GROUP BY state`, func(s string, n int64) { c.Deliveries[DeliveryState(s)] = n }},
	} {
		rows, err := x.r.QueryContext(ctx, q.sql)
		if err != nil {
			return c, fmt.Errorf("store: work counts: %w", err)
		}
		for rows.Next() {
			var s string
			var n int64
			if err := rows.Scan(&s, &n); err != nil {
				rows.Close()
				return c, fmt.Errorf("store: work counts: %w", err)
			}
			q.put(s, n)
		}
		rows.Close()
	}
	return c, nil
}

func (x *SQLiteIndex) exec(ctx context.Context, what, query string, args ...any) error {
	if _, err := x.w.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}
