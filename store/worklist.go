package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Worklist is the reading worklist as the index keeps it: one workitem per
// study (a Unified Procedure Step, PS3.4 Annex CC), or per UPS-RS create,
// and an append-only log of every change to them (who, what, from, to,
// why), which is both the priority audit trail and the feed of live
// updates. Package worklist gives the rows their UPS meaning.
type Worklist interface {
	// CreateWorkitem adds w and logs its creation; a workitem with w's
	// UID, or of w's study, already there is ErrExists. Deliveries in out
	// are queued in the same transaction.
	CreateWorkitem(ctx context.Context, w Workitem, actor string, out ...NewDelivery) (Workitem, error)
	// Workitem returns one by UID, WorkitemOfStudy by study; ErrNotFound
	// when there is none.
	Workitem(ctx context.Context, uid string) (Workitem, error)
	WorkitemOfStudy(ctx context.Context, studyInstanceUID string) (Workitem, error)
	// SearchWorkitems lists the workitems q selects, most urgent first:
	// priority, then the longest waiting.
	SearchWorkitems(ctx context.Context, q WorkitemQuery) ([]Workitem, error)
	// UpdateWorkitem changes a workitem in one transaction: change gets
	// the current row and edits it, returning the events that describe
	// the edit (none: nothing is written) and the deliveries it makes
	// (queued in the same transaction), or an error that aborts it.
	UpdateWorkitem(ctx context.Context, uid string, change WorkitemEdit) (Workitem, error)
	// WorklistEvents returns up to limit events after seq, in order.
	WorklistEvents(ctx context.Context, afterSeq uint64, limit int) ([]WorklistEvent, error)
	// WorkitemEvents returns one workitem's events, in order.
	WorkitemEvents(ctx context.Context, uid string) ([]WorklistEvent, error)
}

// WorkitemEdit edits a workitem in its transaction (see UpdateWorkitem).
type WorkitemEdit func(*Workitem) ([]WorklistEvent, []NewDelivery, error)

// ErrExists: the row to create is already there.
var ErrExists = errors.New("store: already exists")

// Workitem is a worklist row. Priority is on the inference scale (0 low,
// 1 routine, 2 high, 3 stat); package worklist maps it to UPS and
// clinical terms.
type Workitem struct {
	UID              string
	StudyInstanceUID string // "" for a workitem of no study we hold
	State            string // SCHEDULED, IN PROGRESS, COMPLETED, CANCELED
	Priority         int
	BasePriority     int    // as received and routed, before any finding
	Override         bool   // a person set the priority: findings no longer change it
	Reason           string // why it has its priority
	TransactionUID   string // the performer's, while IN PROGRESS
	Modality         string
	Description      string
	// Dataset is the workitem's other attributes, DICOM JSON (PS3.18 F.2).
	Dataset     []byte
	Findings    []WorkitemFinding
	ScheduledAt time.Time // when the study arrived (the reading wait starts)
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Seq         uint64 // its newest event
}

// WorkitemFinding is one model's answer for one label, as the worklist
// shows it.
type WorkitemFinding struct {
	Model       string  `json:"model"`
	Version     string  `json:"version"`
	Label       string  `json:"label"`
	Meaning     string  `json:"meaning"`
	Probability float64 `json:"probability"`
	Threshold   float64 `json:"threshold"`
	Positive    bool    `json:"positive"`
	// SRUID is the SR that reports it.
	SRUID string `json:"sr_uid,omitempty"`
}

// WorklistEvent is one change to a workitem.
type WorklistEvent struct {
	Seq              uint64
	UID              string // the workitem
	StudyInstanceUID string // its study (filled on read)
	At               time.Time
	Kind             string // created, priority, state, findings, updated
	Actor            string // who: "ai:MODEL@VERSION", "route:NAME", "ups-rs", "page:USER"…
	From, To         string
	Reason           string
}

// WorkitemQuery selects workitems; zero fields select all.
type WorkitemQuery struct {
	UID              string
	StudyInstanceUID string
	States           []string
	MinPriority      int // with HasMinPriority
	HasMinPriority   bool
	Priorities       []int
	Modality         string
	ScheduledFrom    time.Time
	ScheduledTo      time.Time // exclusive
	Limit, Offset    int       // Limit 0: DefaultWorkitemLimit
}

// DefaultWorkitemLimit bounds a search without a limit.
const DefaultWorkitemLimit = 1000

const workitemColumns = `w.uid, w.study_instance_uid, w.state, w.priority, w.base_priority, w.override, w.reason,
	w.transaction_uid, w.modality, w.description, w.dataset, w.findings, w.scheduled_at, w.created_at, w.updated_at, w.seq`

func scanWorkitem(s scanner) (Workitem, error) {
	var w Workitem
	var override int
	var findings string
	var sched, created, updated, seq int64
	if err := s.Scan(&w.UID, &w.StudyInstanceUID, &w.State, &w.Priority, &w.BasePriority, &override, &w.Reason,
		&w.TransactionUID, &w.Modality, &w.Description, &w.Dataset, &findings, &sched, &created, &updated, &seq); err != nil {
		return Workitem{}, err
	}
	w.Override = override != 0
	if err := json.Unmarshal([]byte(findings), &w.Findings); err != nil {
		return Workitem{}, fmt.Errorf("store: workitem %s findings: %w", w.UID, err)
	}
	w.ScheduledAt, w.CreatedAt, w.UpdatedAt = fromNanos(sched), fromNanos(created), fromNanos(updated)
	w.Seq = uint64(seq)
	return w, nil
}

// CreateWorkitem implements Worklist.
func (x *SQLiteIndex) CreateWorkitem(ctx context.Context, w Workitem, actor string, out ...NewDelivery) (created Workitem, err error) {
	err = x.inTx(ctx, "create workitem", func(tx *sql.Tx) error {
		var err error
		created, err = insertWorkitem(ctx, tx, w, actor)
		if err != nil {
			return err
		}
		return queueDeliveries(ctx, tx, 0, created.StudyInstanceUID, out)
	})
	return created, err
}

func insertWorkitem(ctx context.Context, tx *sql.Tx, w Workitem, actor string) (Workitem, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM workitem WHERE uid = ? OR (study_instance_uid <> '' AND study_instance_uid = ?)`,
		w.UID, w.StudyInstanceUID).Scan(&n); err != nil {
		return Workitem{}, err
	}
	if n > 0 {
		return Workitem{}, ErrExists
	}
	now := time.Now().UTC()
	w.CreatedAt, w.UpdatedAt = now, now
	if w.ScheduledAt.IsZero() {
		w.ScheduledAt = now
	}
	if w.Findings == nil {
		w.Findings = []WorkitemFinding{}
	}
	if w.Dataset == nil {
		w.Dataset = []byte("{}")
	}
	findings, _ := json.Marshal(w.Findings)
	if _, err := tx.ExecContext(ctx, `INSERT INTO workitem (uid, study_instance_uid, state, priority, base_priority, override,
	reason, transaction_uid, modality, description, dataset, findings, scheduled_at, created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.UID, w.StudyInstanceUID, w.State, w.Priority, w.BasePriority, boolInt(w.Override), w.Reason, w.TransactionUID,
		w.Modality, w.Description, w.Dataset, string(findings), nanos(w.ScheduledAt), nanos(now), nanos(now)); err != nil {
		return Workitem{}, err
	}
	seq, err := logEvents(ctx, tx, w.UID, now, []WorklistEvent{{Kind: "created", Actor: actor, To: w.State, Reason: w.Reason}})
	if err != nil {
		return Workitem{}, err
	}
	w.Seq = seq
	return w, nil
}

// logEvents appends events of uid at now and sets the workitem's seq to
// the last one's; it returns that seq.
func logEvents(ctx context.Context, tx *sql.Tx, uid string, now time.Time, evs []WorklistEvent) (uint64, error) {
	var seq int64
	for _, e := range evs {
		if err := tx.QueryRowContext(ctx, `INSERT INTO worklist_event (uid, at, kind, actor, from_value, to_value, reason)
	VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`, uid, nanos(now), e.Kind, e.Actor, e.From, e.To, e.Reason).Scan(&seq); err != nil {
			return 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE workitem SET seq = ? WHERE uid = ?`, seq, uid); err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

// Workitem implements Worklist.
func (x *SQLiteIndex) Workitem(ctx context.Context, uid string) (Workitem, error) {
	return x.oneWorkitem(ctx, `w.uid = ?`, uid)
}

// WorkitemOfStudy implements Worklist.
func (x *SQLiteIndex) WorkitemOfStudy(ctx context.Context, studyInstanceUID string) (Workitem, error) {
	if studyInstanceUID == "" {
		return Workitem{}, ErrNotFound
	}
	return x.oneWorkitem(ctx, `w.study_instance_uid = ?`, studyInstanceUID)
}

func (x *SQLiteIndex) oneWorkitem(ctx context.Context, where string, arg string) (Workitem, error) {
	w, err := scanWorkitem(x.r.QueryRowContext(ctx, `SELECT `+workitemColumns+` FROM workitem w WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return Workitem{}, ErrNotFound
	}
	if err != nil {
		return Workitem{}, fmt.Errorf("store: workitem: %w", err)
	}
	return w, nil
}

// SearchWorkitems implements Worklist.
func (x *SQLiteIndex) SearchWorkitems(ctx context.Context, q WorkitemQuery) ([]Workitem, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if q.UID != "" {
		add(`w.uid = ?`, q.UID)
	}
	if q.StudyInstanceUID != "" {
		add(`w.study_instance_uid = ?`, q.StudyInstanceUID)
	}
	if len(q.States) > 0 {
		add(`w.state IN (`+placeholders(len(q.States))+`)`, anys(q.States)...)
	}
	if q.HasMinPriority {
		add(`w.priority >= ?`, q.MinPriority)
	}
	if len(q.Priorities) > 0 {
		add(`w.priority IN (`+placeholders(len(q.Priorities))+`)`, anys(q.Priorities)...)
	}
	if q.Modality != "" {
		add(`w.modality = ?`, q.Modality)
	}
	if !q.ScheduledFrom.IsZero() {
		add(`w.scheduled_at >= ?`, nanos(q.ScheduledFrom))
	}
	if !q.ScheduledTo.IsZero() {
		add(`w.scheduled_at < ?`, nanos(q.ScheduledTo))
	}
	text := `SELECT ` + workitemColumns + ` FROM workitem w`
	if len(where) > 0 {
		text += ` WHERE ` + strings.Join(where, ` AND `)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultWorkitemLimit
	}
	text += ` ORDER BY w.priority DESC, w.scheduled_at, w.uid LIMIT ? OFFSET ?`
	args = append(args, limit, max(q.Offset, 0))
	rows, err := x.r.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("store: search workitems: %w", err)
	}
	defer rows.Close()
	var out []Workitem
	for rows.Next() {
		w, err := scanWorkitem(rows)
		if err != nil {
			return nil, fmt.Errorf("store: search workitems: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func anys[T any](v []T) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = x
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// UpdateWorkitem implements Worklist.
func (x *SQLiteIndex) UpdateWorkitem(ctx context.Context, uid string, change WorkitemEdit) (w Workitem, err error) {
	err = x.inTx(ctx, "update workitem", func(tx *sql.Tx) error {
		var err error
		w, err = updateWorkitem(ctx, tx, uid, change)
		return err
	})
	return w, err
}

func updateWorkitem(ctx context.Context, tx *sql.Tx, uid string, change WorkitemEdit) (Workitem, error) {
	w, err := scanWorkitem(tx.QueryRowContext(ctx, `SELECT `+workitemColumns+` FROM workitem w WHERE w.uid = ?`, uid))
	if errors.Is(err, sql.ErrNoRows) {
		return Workitem{}, ErrNotFound
	}
	if err != nil {
		return Workitem{}, err
	}
	evs, out, err := change(&w)
	if err != nil || len(evs) == 0 {
		return w, err
	}
	if err := queueDeliveries(ctx, tx, 0, w.StudyInstanceUID, out); err != nil {
		return Workitem{}, err
	}
	now := time.Now().UTC()
	w.UpdatedAt = now
	findings, _ := json.Marshal(w.Findings)
	if _, err := tx.ExecContext(ctx, `UPDATE workitem SET state = ?, priority = ?, base_priority = ?, override = ?, reason = ?,
	transaction_uid = ?, modality = ?, description = ?, dataset = ?, findings = ?, updated_at = ? WHERE uid = ?`,
		w.State, w.Priority, w.BasePriority, boolInt(w.Override), w.Reason, w.TransactionUID, w.Modality, w.Description,
		w.Dataset, string(findings), nanos(now), uid); err != nil {
		return Workitem{}, err
	}
	if w.Seq, err = logEvents(ctx, tx, uid, now, evs); err != nil {
		return Workitem{}, err
	}
	return w, nil
}

// WorkitemChange is what an evaluation or a job's completion does to its
// study's workitem, in its transaction: Create it when the study has
// none (Create.UID set), then Change it, the one just created included
// (Change may be nil).
type WorkitemChange struct {
	StudyInstanceUID string
	Create           Workitem
	Actor            string
	Change           WorkitemEdit
}

func applyWorkitemChange(ctx context.Context, tx *sql.Tx, c *WorkitemChange) error {
	if c == nil || c.StudyInstanceUID == "" {
		return nil
	}
	var uid string
	err := tx.QueryRowContext(ctx, `SELECT uid FROM workitem WHERE study_instance_uid = ?`, c.StudyInstanceUID).Scan(&uid)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if c.Create.UID == "" {
			return nil
		}
		w, err := insertWorkitem(ctx, tx, c.Create, c.Actor)
		if err != nil {
			return fmt.Errorf("store: create workitem: %w", err)
		}
		uid = w.UID
	case err != nil:
		return fmt.Errorf("store: workitem of study: %w", err)
	}
	if c.Change == nil {
		return nil
	}
	if _, err := updateWorkitem(ctx, tx, uid, c.Change); err != nil {
		return fmt.Errorf("store: update workitem: %w", err)
	}
	return nil
}

// WorklistEvents implements Worklist.
func (x *SQLiteIndex) WorklistEvents(ctx context.Context, afterSeq uint64, limit int) ([]WorklistEvent, error) {
	if limit <= 0 {
		limit = DefaultWorkitemLimit
	}
	return x.events(ctx, `e.seq > ? ORDER BY e.seq LIMIT ?`, int64(afterSeq), limit)
}

// WorkitemEvents implements Worklist.
func (x *SQLiteIndex) WorkitemEvents(ctx context.Context, uid string) ([]WorklistEvent, error) {
	return x.events(ctx, `e.uid = ? ORDER BY e.seq`, uid)
}

func (x *SQLiteIndex) events(ctx context.Context, where string, args ...any) ([]WorklistEvent, error) {
	rows, err := x.r.QueryContext(ctx, `SELECT e.seq, e.uid, coalesce(w.study_instance_uid, ''), e.at, e.kind, e.actor,
	e.from_value, e.to_value, e.reason FROM worklist_event e LEFT JOIN workitem w ON w.uid = e.uid WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: worklist events: %w", err)
	}
	defer rows.Close()
	var out []WorklistEvent
	for rows.Next() {
		var e WorklistEvent
		var seq, at int64
		if err := rows.Scan(&seq, &e.UID, &e.StudyInstanceUID, &at, &e.Kind, &e.Actor, &e.From, &e.To, &e.Reason); err != nil {
			return nil, fmt.Errorf("store: worklist events: %w", err)
		}
		e.Seq, e.At = uint64(seq), fromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// inTx runs f in a write transaction, committed when f returns nil.
func (x *SQLiteIndex) inTx(ctx context.Context, what string, f func(*sql.Tx) error) (err error) {
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err = f(tx); err != nil {
		_ = tx.Rollback()
		if errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}
