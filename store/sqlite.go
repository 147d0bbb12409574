package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite" (pure Go, no cgo)
)

// migrations are the index schema versions: migrations[i] takes a database
// at PRAGMA user_version i to i+1, in one transaction with the version
// bump. Append only; never edit a released entry.
var migrations = []string{
	// 1: patient / study / series / instance, normalized as QIDO-RS
	// searches them (PS3.18 10.6: study, series and instance levels with
	// their counts, derived with COUNT over the *_pk indexes), and the log
	// segments the instances' blobs live in.
	`
CREATE TABLE patient (
	pk           INTEGER PRIMARY KEY,
	patient_id   TEXT    NOT NULL UNIQUE,
	patient_name TEXT    NOT NULL DEFAULT '',
	birth_date   TEXT    NOT NULL DEFAULT '',
	sex          TEXT    NOT NULL DEFAULT '',
	updated_at   INTEGER NOT NULL
);
CREATE INDEX patient_name_idx ON patient(patient_name);

CREATE TABLE study (
	pk                       INTEGER PRIMARY KEY,
	study_instance_uid       TEXT    NOT NULL UNIQUE,
	patient_pk               INTEGER NOT NULL REFERENCES patient(pk),
	study_date               TEXT    NOT NULL DEFAULT '',
	study_time               TEXT    NOT NULL DEFAULT '',
	accession_number         TEXT    NOT NULL DEFAULT '',
	study_description        TEXT    NOT NULL DEFAULT '',
	referring_physician_name TEXT    NOT NULL DEFAULT '',
	study_id                 TEXT    NOT NULL DEFAULT '',
	created_at               INTEGER NOT NULL,
	updated_at               INTEGER NOT NULL
);
CREATE INDEX study_patient_idx   ON study(patient_pk);
CREATE INDEX study_date_idx      ON study(study_date, study_time);
CREATE INDEX study_accession_idx ON study(accession_number);
CREATE INDEX study_updated_idx   ON study(updated_at);

CREATE TABLE series (
	pk                  INTEGER PRIMARY KEY,
	series_instance_uid TEXT    NOT NULL UNIQUE,
	study_pk            INTEGER NOT NULL REFERENCES study(pk),
	modality            TEXT    NOT NULL DEFAULT '',
	series_number       INTEGER NOT NULL DEFAULT '',
	series_description  TEXT    NOT NULL DEFAULT '',
	body_part_examined  TEXT    NOT NULL DEFAULT '',
	created_at          INTEGER NOT NULL,
	updated_at          INTEGER NOT NULL
);
CREATE INDEX series_study_idx    ON series(study_pk);
CREATE INDEX series_modality_idx ON series(modality);
CREATE INDEX series_updated_idx  ON series(updated_at);

CREATE TABLE instance (
	pk                     INTEGER PRIMARY KEY,
	sop_instance_uid       TEXT    NOT NULL UNIQUE,
	series_pk              INTEGER NOT NULL REFERENCES series(pk),
	sop_class_uid          TEXT    NOT NULL,
	instance_number        INTEGER NOT NULL DEFAULT '',
	image_rows             INTEGER NOT NULL DEFAULT 0,
	image_columns          INTEGER NOT NULL DEFAULT 0,
	number_of_frames       INTEGER NOT NULL DEFAULT 0,
	specific_character_set TEXT    NOT NULL DEFAULT '',
	transfer_syntax_uid    TEXT    NOT NULL,
	calling_ae             TEXT    NOT NULL DEFAULT '',
	called_ae              TEXT    NOT NULL DEFAULT '',
	remote_addr            TEXT    NOT NULL DEFAULT '',
	source                 TEXT    NOT NULL DEFAULT '',
	received_at            INTEGER NOT NULL,
	size                   INTEGER NOT NULL,
	sha256                 TEXT    NOT NULL,
	blob_key               TEXT    NOT NULL,
	dataset_offset         INTEGER NOT NULL,
	seq                    INTEGER NOT NULL,
	segment                INTEGER NOT NULL
);
CREATE INDEX instance_series_idx    ON instance(series_pk);
CREATE INDEX instance_received_idx  ON instance(received_at);
CREATE INDEX instance_sop_class_idx ON instance(sop_class_uid);

-- live: instance rows whose blob is in the segment; indexed_to: every
-- log record of the segment that ends at or before it is indexed.
CREATE TABLE segment (
	id         INTEGER PRIMARY KEY,
	live       INTEGER NOT NULL,
	indexed_to INTEGER NOT NULL
);
`,
	// 2: what follows an instance (work.go): per study, how far its
	// instances have been evaluated; the inference jobs evaluation made;
	// the outbox of deliveries their results became.
	`
CREATE TABLE study_activity (
	study_instance_uid TEXT    PRIMARY KEY,
	last_seq           INTEGER NOT NULL,
	last_received_at   INTEGER NOT NULL,
	evaluated_seq      INTEGER NOT NULL DEFAULT 0,
	evaluated_at       INTEGER NOT NULL DEFAULT 0,
	outcome            TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX study_activity_pending_idx ON study_activity(last_received_at) WHERE last_seq > evaluated_seq;

CREATE TABLE job (
	id                 INTEGER PRIMARY KEY,
	study_instance_uid TEXT    NOT NULL,
	model              TEXT    NOT NULL,
	revision           INTEGER NOT NULL,
	route              TEXT    NOT NULL,
	priority           INTEGER NOT NULL,
	series             TEXT    NOT NULL,
	destinations       TEXT    NOT NULL,
	digest             TEXT    NOT NULL,
	state              TEXT    NOT NULL,
	attempts           INTEGER NOT NULL DEFAULT 0,
	not_before         INTEGER NOT NULL,
	ready_at           INTEGER NOT NULL,
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	model_version      TEXT    NOT NULL DEFAULT '',
	result             BLOB,
	error              TEXT    NOT NULL DEFAULT '',
	UNIQUE (study_instance_uid, model, revision)
);
CREATE INDEX job_queue_idx ON job(state, priority DESC, not_before, id);

CREATE TABLE outbox (
	id            INTEGER PRIMARY KEY,
	job_id        INTEGER NOT NULL REFERENCES job(id),
	destination   TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	object_uid    TEXT    NOT NULL,
	sop_class_uid TEXT    NOT NULL,
	payload       BLOB    NOT NULL,
	state         TEXT    NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_at       INTEGER NOT NULL,
	ready_at      INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	delivered_at  INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT    NOT NULL DEFAULT '',
	UNIQUE (destination, object_uid)
);
CREATE INDEX outbox_due_idx ON outbox(destination, next_at) WHERE state = 'pending';
`,
	// 3: deliveries that belong to no job (a study's FHIR ImagingStudy,
	// queued when the study is complete): job_id 0, no foreign key.
	`
CREATE TABLE outbox3 (
	id            INTEGER PRIMARY KEY,
	job_id        INTEGER NOT NULL DEFAULT 0,
	destination   TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	object_uid    TEXT    NOT NULL,
	sop_class_uid TEXT    NOT NULL,
	payload       BLOB    NOT NULL,
	state         TEXT    NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_at       INTEGER NOT NULL,
	ready_at      INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	delivered_at  INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT    NOT NULL DEFAULT '',
	UNIQUE (destination, object_uid)
);
INSERT INTO outbox3 SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox3 RENAME TO outbox;
CREATE INDEX outbox_due_idx ON outbox(destination, next_at) WHERE state = 'pending';
CREATE INDEX outbox_job_idx ON outbox(job_id);
`,
	// 4: the C-STORE request priority of each instance; the reading
	// worklist (worklist.go): one workitem per study (or made over
	// UPS-RS), and the append-only log of its changes.
	`
ALTER TABLE instance ADD COLUMN request_priority TEXT NOT NULL DEFAULT '';

CREATE TABLE workitem (
	uid                TEXT    PRIMARY KEY,
	study_instance_uid TEXT    NOT NULL DEFAULT '',
	state              TEXT    NOT NULL,
	priority           INTEGER NOT NULL,
	base_priority      INTEGER NOT NULL,
	override           INTEGER NOT NULL DEFAULT 0,
	reason             TEXT    NOT NULL DEFAULT '',
	transaction_uid    TEXT    NOT NULL DEFAULT '',
	modality           TEXT    NOT NULL DEFAULT '',
	description        TEXT    NOT NULL DEFAULT '',
	dataset            BLOB    NOT NULL,
	findings           TEXT    NOT NULL DEFAULT '[]',
	scheduled_at       INTEGER NOT NULL,
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	seq                INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX workitem_study_idx ON workitem(study_instance_uid) WHERE study_instance_uid <> '';
CREATE INDEX workitem_queue_idx ON workitem(state, priority DESC, scheduled_at);

CREATE TABLE worklist_event (
	seq                INTEGER PRIMARY KEY AUTOINCREMENT,
	uid                TEXT    NOT NULL,
	at                 INTEGER NOT NULL,
	kind               TEXT    NOT NULL,
	actor              TEXT    NOT NULL,
	from_value         TEXT    NOT NULL DEFAULT '',
	to_value           TEXT    NOT NULL DEFAULT '',
	reason             TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX worklist_event_uid_idx ON worklist_event(uid, seq);
`,
	// 5: retention (purge.go). Each delivery names its study, so that a
	// study is purged with its deliveries: a job's study, the study of a
	// FHIR key (imagingstudy/STUDY/…, report/STUDY/…) or of a UPS key
	// (WORKITEM@…); an HL7 delivery queued before this version names none.
	// The log records a committed purge has yet to erase.
	`
ALTER TABLE outbox ADD COLUMN study_instance_uid TEXT NOT NULL DEFAULT '';
UPDATE outbox SET study_instance_uid = COALESCE((SELECT j.study_instance_uid FROM job j WHERE j.id = outbox.job_id), '')
WHERE job_id <> 0;
UPDATE outbox SET study_instance_uid = substr(object_uid, instr(object_uid, '/') + 1,
	instr(substr(object_uid, instr(object_uid, '/') + 1), '/') - 1)
WHERE job_id = 0 AND object_uid LIKE '%/%/%';
UPDATE outbox SET study_instance_uid = COALESCE((SELECT w.study_instance_uid FROM workitem w
	WHERE w.uid = substr(outbox.object_uid, 1, instr(outbox.object_uid, '@') - 1)), '')
WHERE job_id = 0 AND object_uid LIKE '%@%';
CREATE INDEX outbox_study_idx ON outbox(study_instance_uid);

CREATE TABLE erasure (
	blob_key TEXT PRIMARY KEY
);
`,
}

// SchemaVersion is the index schema this package writes.
func SchemaVersion() int { return len(migrations) }

// SQLiteIndex is the embedded Index: one SQLite database in WAL mode.
// Writes go through a pool of exactly one connection, so writers queue in
// Go instead of spinning on SQLITE_BUSY; reads use their own pool of
// readConns connections and never block the writer (WAL). Statements are
// prepared once, at open.
type SQLiteIndex struct {
	w, r *sql.DB

	// On w.
	current, upPatient, upStudy, upSeries, upInstance, upSegment, forgetSegment, upActivity *sql.Stmt
	selPatient, selStudy, selSeries                                                         *sql.Stmt
	// On r.
	lookup, count, segments, maxSeq *sql.Stmt

	onCommit func(time.Duration) // observes each Apply transaction
	mu       sync.Mutex          // held by Apply and PurgeStudy, which share levels
	levels   levelPKs            // what the last committed Apply wrote; reset by PurgeStudy
}

// OpenSQLiteIndex opens (creating and migrating when needed) the index at
// path. Commits are synchronous=NORMAL: in WAL mode a commit is then
// durable at the next checkpoint, and a power loss may roll back the last
// ones. Nothing is lost by that: an instance is acknowledged once its log
// record is durable, and each segment's mark (indexed_to) rolls back with
// the rows it covers, so Open replays those records again
// (https://www.sqlite.org/pragma.html#pragma_synchronous).
func OpenSQLiteIndex(ctx context.Context, path string) (*SQLiteIndex, error) {
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_busy_timeout=" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + "&_foreign_keys=1"
	w, err := sql.Open("sqlite", base+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open index: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	x := &SQLiteIndex{w: w, onCommit: func(time.Duration) {}}
	if err := x.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// Readers open after the writer made the database WAL.
	r, err := sql.Open("sqlite", base+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open index: %w", err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	x.r = r
	if err := x.prepare(ctx); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

func (x *SQLiteIndex) migrate(ctx context.Context) error {
	var v int
	if err := x.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: index is version %d, this radgate knows %d", ErrSchemaTooNew, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := x.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: index migration %d: %w", v+1, err)
		}
		_, err = tx.ExecContext(ctx, migrations[v])
		if err == nil {
			// PRAGMA user_version is part of the transaction (it lives in
			// the database header page).
			_, err = tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(v+1))
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: index migration %d: %w", v+1, err)
		}
	}
	return nil
}

const lookupSQL = `
SELECT i.sop_instance_uid, i.sop_class_uid, se.series_instance_uid, st.study_instance_uid,
	p.patient_id, p.patient_name, p.birth_date, p.sex,
	st.study_date, st.study_time, st.accession_number, st.study_description, st.referring_physician_name, st.study_id,
	se.modality, se.series_number, se.series_description, se.body_part_examined,
	i.instance_number, i.image_rows, i.image_columns, i.number_of_frames, i.specific_character_set, i.transfer_syntax_uid,
	i.calling_ae, i.called_ae, i.remote_addr, i.source, i.request_priority, i.received_at,
	i.size, i.sha256, i.blob_key, i.dataset_offset, i.seq
FROM instance i
JOIN series se ON se.pk = i.series_pk
JOIN study st ON st.pk = se.study_pk
JOIN patient p ON p.pk = st.patient_pk
WHERE i.sop_instance_uid = ?`

func (x *SQLiteIndex) prepare(ctx context.Context) error {
	for _, s := range []struct {
		db   *sql.DB
		dst  **sql.Stmt
		text string
	}{
		{x.w, &x.current, `SELECT seq, segment FROM instance WHERE sop_instance_uid = ?`},
		{x.w, &x.upPatient, `
INSERT INTO patient (patient_id, patient_name, birth_date, sex, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (patient_id) DO UPDATE SET patient_name = excluded.patient_name, birth_date = excluded.birth_date,
	sex = excluded.sex, updated_at = excluded.updated_at
WHERE (patient_name, birth_date, sex) IS NOT (excluded.patient_name, excluded.birth_date, excluded.sex)
RETURNING pk`},
		{x.w, &x.selPatient, `SELECT pk FROM patient WHERE patient_id = ?`},
		{x.w, &x.upStudy, `
INSERT INTO study (study_instance_uid, patient_pk, study_date, study_time, accession_number, study_description,
	referring_physician_name, study_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (study_instance_uid) DO UPDATE SET patient_pk = excluded.patient_pk, study_date = excluded.study_date,
	study_time = excluded.study_time, accession_number = excluded.accession_number,
	study_description = excluded.study_description, referring_physician_name = excluded.referring_physician_name,
	study_id = excluded.study_id, updated_at = excluded.updated_at
WHERE (patient_pk, study_date, study_time, accession_number, study_description, referring_physician_name, study_id)
	IS NOT (excluded.patient_pk, excluded.study_date, excluded.study_time, excluded.accession_number,
	excluded.study_description, excluded.referring_physician_name, excluded.study_id)
RETURNING pk`},
		{x.w, &x.selStudy, `SELECT pk FROM study WHERE study_instance_uid = ?`},
		{x.w, &x.upSeries, `
INSERT INTO series (series_instance_uid, study_pk, modality, series_number, series_description, body_part_examined,
	created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_instance_uid) DO UPDATE SET study_pk = excluded.study_pk, modality = excluded.modality,
	series_number = excluded.series_number, series_description = excluded.series_description,
	body_part_examined = excluded.body_part_examined, updated_at = excluded.updated_at
WHERE (study_pk, modality, series_number, series_description, body_part_examined)
	IS NOT (excluded.study_pk, excluded.modality, excluded.series_number, excluded.series_description,
	excluded.body_part_examined)
RETURNING pk`},
		{x.w, &x.selSeries, `SELECT pk FROM series WHERE series_instance_uid = ?`},
		{x.w, &x.upInstance, `
INSERT INTO instance (sop_instance_uid, series_pk, sop_class_uid, instance_number, image_rows, image_columns,
	number_of_frames, specific_character_set, transfer_syntax_uid, calling_ae, called_ae, remote_addr, source,
	request_priority, received_at, size, sha256, blob_key, dataset_offset, seq, segment)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sop_instance_uid) DO UPDATE SET series_pk = excluded.series_pk, sop_class_uid = excluded.sop_class_uid,
	instance_number = excluded.instance_number, image_rows = excluded.image_rows, image_columns = excluded.image_columns,
	number_of_frames = excluded.number_of_frames, specific_character_set = excluded.specific_character_set,
	transfer_syntax_uid = excluded.transfer_syntax_uid, calling_ae = excluded.calling_ae, called_ae = excluded.called_ae,
	remote_addr = excluded.remote_addr, source = excluded.source, request_priority = excluded.request_priority,
	received_at = excluded.received_at,
	size = excluded.size, sha256 = excluded.sha256, blob_key = excluded.blob_key, dataset_offset = excluded.dataset_offset,
	seq = excluded.seq, segment = excluded.segment`},
		{x.w, &x.upSegment, `
INSERT INTO segment (id, live, indexed_to) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET live = live + excluded.live, indexed_to = max(indexed_to, excluded.indexed_to)
RETURNING live`},
		{x.w, &x.forgetSegment, `DELETE FROM segment WHERE id = ?`},
		{x.w, &x.upActivity, `
INSERT INTO study_activity (study_instance_uid, last_seq, last_received_at) VALUES (?, ?, ?)
ON CONFLICT (study_instance_uid) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq),
	last_received_at = max(last_received_at, excluded.last_received_at)`},
		{x.r, &x.lookup, lookupSQL},
		{x.r, &x.count, `SELECT COUNT(*) FROM instance`},
		{x.r, &x.segments, `SELECT id, live, indexed_to FROM segment ORDER BY id`},
		{x.r, &x.maxSeq, `SELECT COALESCE(MAX(seq), 0) FROM instance`},
	} {
		st, err := s.db.PrepareContext(ctx, s.text)
		if err != nil {
			return fmt.Errorf("store: index: prepare: %w", err)
		}
		*s.dst = st
	}
	return nil
}

// Lookup implements Index.
func (x *SQLiteIndex) Lookup(ctx context.Context, sopInstanceUID string) (Instance, error) {
	in, err := scanInstance(x.lookup.QueryRowContext(ctx, sopInstanceUID))
	if errors.Is(err, sql.ErrNoRows) {
		return Instance{}, ErrNotFound
	}
	if err != nil {
		return Instance{}, fmt.Errorf("store: index lookup: %w", err)
	}
	return in, nil
}

// scanInstance reads a row of lookupSQL's columns.
func scanInstance(s scanner) (Instance, error) {
	var in Instance
	var received int64
	err := s.Scan(
		&in.SOPInstanceUID, &in.SOPClassUID, &in.SeriesInstanceUID, &in.StudyInstanceUID,
		&in.PatientID, &in.PatientName, &in.PatientBirthDate, &in.PatientSex,
		&in.StudyDate, &in.StudyTime, &in.AccessionNumber, &in.StudyDescription, &in.ReferringPhysicianName, &in.StudyID,
		&in.Modality, &in.SeriesNumber, &in.SeriesDescription, &in.BodyPartExamined,
		&in.InstanceNumber, &in.Rows, &in.Columns, &in.NumberOfFrames, &in.SpecificCharacterSet, &in.TransferSyntaxUID,
		&in.CallingAE, &in.CalledAE, &in.RemoteAddr, &in.Source, &in.RequestPriority, &received,
		&in.Size, &in.SHA256, &in.BlobKey, &in.DatasetOffset, &in.Seq,
	)
	in.ReceivedAt = time.Unix(0, received).UTC()
	return in, err
}

// Apply implements Index: one IMMEDIATE transaction for the whole batch,
// so a batch costs one commit however many instances it holds.
func (x *SQLiteIndex) Apply(ctx context.Context, ops []IndexOp) (emptied []uint64, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	start := time.Now()
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: index begin: %w", err)
	}
	pks := x.levels
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			emptied = nil
			x.levels = levelPKs{}
		} else {
			x.levels = pks
		}
	}()
	type delta struct{ live, to int64 }
	deltas := map[uint64]*delta{}
	at := func(id uint64) *delta {
		d := deltas[id]
		if d == nil {
			d = &delta{}
			deltas[id] = d
		}
		return d
	}
	// Per study, the newest instance this batch indexed: study assembly
	// (work.go) waits for silence after it.
	type arrival struct{ seq, at int64 }
	studies := map[string]*arrival{}
	current := tx.StmtContext(ctx, x.current)
	for i := range ops {
		op := &ops[i]
		in := &op.Instance
		d := at(op.End.Segment)
		d.to = max(d.to, op.End.Offset)
		var curSeq, curSeg int64
		err = current.QueryRowContext(ctx, in.SOPInstanceUID).Scan(&curSeq, &curSeg)
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: index: %w", err)
		}
		if exists && uint64(curSeq) >= in.Seq {
			continue // superseded: its record is dead from the start
		}
		if err = x.upsert(ctx, tx, in, op.End.Segment, &pks); err != nil {
			return nil, err
		}
		if exists {
			at(uint64(curSeg)).live--
		}
		d.live++
		a := studies[in.StudyInstanceUID]
		if a == nil {
			a = &arrival{}
			studies[in.StudyInstanceUID] = a
		}
		a.seq, a.at = max(a.seq, int64(in.Seq)), max(a.at, in.ReceivedAt.UnixNano())
	}
	upAct := tx.StmtContext(ctx, x.upActivity)
	for uid, a := range studies {
		if _, err = upAct.ExecContext(ctx, uid, a.seq, a.at); err != nil {
			return nil, fmt.Errorf("store: index study activity: %w", err)
		}
	}
	ids := make([]uint64, 0, len(deltas))
	for id := range deltas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	up := tx.StmtContext(ctx, x.upSegment)
	for _, id := range ids {
		var live int64
		if err = up.QueryRowContext(ctx, int64(id), deltas[id].live, deltas[id].to).Scan(&live); err != nil {
			return nil, fmt.Errorf("store: index segment: %w", err)
		}
		if live == 0 {
			emptied = append(emptied, id)
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: index commit: %w", err)
	}
	x.onCommit(time.Since(start))
	return emptied, nil
}

// levelPKs remembers the patient, study and series rows the previous
// instance indexed was written with: the instances of a series repeat
// them, and skipping their upserts takes six of the nine statements an
// instance would cost. It outlives a transaction only when that commits.
type levelPKs struct {
	prev                   Instance
	patient, study, series int64
	got                    bool
}

func (x *SQLiteIndex) upsert(ctx context.Context, tx *sql.Tx, in *Instance, segment uint64, pks *levelPKs) (err error) {
	now := time.Now().UnixNano()
	p := &pks.prev
	defer func() { pks.prev = *in }()
	// Patient, study and series rows are written only when an attribute
	// changed (the upserts' WHERE), or not even looked at when the
	// previous instance indexed carried the same values (PurgeStudy,
	// which deletes such rows, resets x.levels).
	if !(pks.got && p.PatientID == in.PatientID && p.PatientName == in.PatientName &&
		p.PatientBirthDate == in.PatientBirthDate && p.PatientSex == in.PatientSex) {
		if pks.patient, err = upsertPK(ctx, tx, x.upPatient, x.selPatient, in.PatientID,
			in.PatientID, in.PatientName, in.PatientBirthDate, in.PatientSex, now); err != nil {
			return fmt.Errorf("store: index patient: %w", err)
		}
		p = nil
	}
	if !(p != nil && p.StudyInstanceUID == in.StudyInstanceUID && p.StudyDate == in.StudyDate &&
		p.StudyTime == in.StudyTime && p.AccessionNumber == in.AccessionNumber &&
		p.StudyDescription == in.StudyDescription && p.ReferringPhysicianName == in.ReferringPhysicianName &&
		p.StudyID == in.StudyID) {
		if pks.study, err = upsertPK(ctx, tx, x.upStudy, x.selStudy, in.StudyInstanceUID,
			in.StudyInstanceUID, pks.patient, in.StudyDate, in.StudyTime, in.AccessionNumber, in.StudyDescription,
			in.ReferringPhysicianName, in.StudyID, now, now); err != nil {
			return fmt.Errorf("store: index study: %w", err)
		}
		p = nil
	}
	if !(p != nil && p.SeriesInstanceUID == in.SeriesInstanceUID && p.Modality == in.Modality &&
		p.SeriesNumber == in.SeriesNumber && p.SeriesDescription == in.SeriesDescription &&
		p.BodyPartExamined == in.BodyPartExamined) {
		if pks.series, err = upsertPK(ctx, tx, x.upSeries, x.selSeries, in.SeriesInstanceUID,
			in.SeriesInstanceUID, pks.study, in.Modality, in.SeriesNumber, in.SeriesDescription, in.BodyPartExamined,
			now, now); err != nil {
			return fmt.Errorf("store: index series: %w", err)
		}
	}
	pks.got = true
	if _, err = tx.StmtContext(ctx, x.upInstance).ExecContext(ctx,
		in.SOPInstanceUID, pks.series, in.SOPClassUID, in.InstanceNumber, in.Rows, in.Columns,
		in.NumberOfFrames, in.SpecificCharacterSet, in.TransferSyntaxUID, in.CallingAE, in.CalledAE, in.RemoteAddr, in.Source,
		in.RequestPriority, in.ReceivedAt.UnixNano(), in.Size, in.SHA256, in.BlobKey, in.DatasetOffset, int64(in.Seq), int64(segment)); err != nil {
		return fmt.Errorf("store: index instance: %w", err)
	}
	return nil
}

// upsertPK runs an upsert that returns the row's pk only when it wrote the
// row, and otherwise selects the pk by key.
func upsertPK(ctx context.Context, tx *sql.Tx, up, sel *sql.Stmt, key any, args ...any) (int64, error) {
	var pk int64
	err := tx.StmtContext(ctx, up).QueryRowContext(ctx, args...).Scan(&pk)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.StmtContext(ctx, sel).QueryRowContext(ctx, key).Scan(&pk)
	}
	return pk, err
}

// Segments implements Index.
func (x *SQLiteIndex) Segments(ctx context.Context) ([]SegmentState, error) {
	rows, err := x.segments.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: index: %w", err)
	}
	defer rows.Close()
	var out []SegmentState
	for rows.Next() {
		var s SegmentState
		var id int64
		if err := rows.Scan(&id, &s.Live, &s.IndexedTo); err != nil {
			return nil, fmt.Errorf("store: index: %w", err)
		}
		s.ID = uint64(id)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: index: %w", err)
	}
	return out, nil
}

// ForgetSegment implements Index.
func (x *SQLiteIndex) ForgetSegment(ctx context.Context, id uint64) error {
	if _, err := x.forgetSegment.ExecContext(ctx, int64(id)); err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	return nil
}

// MaxSeq implements Index.
func (x *SQLiteIndex) MaxSeq(ctx context.Context) (uint64, error) {
	var n int64
	if err := x.maxSeq.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: index: %w", err)
	}
	return uint64(n), nil
}

// Count implements Index.
func (x *SQLiteIndex) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := x.count.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: index count: %w", err)
	}
	return n, nil
}

// Ping implements Index: a query on each pool.
func (x *SQLiteIndex) Ping(ctx context.Context) error {
	for _, db := range []*sql.DB{x.r, x.w} {
		var one int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			return fmt.Errorf("store: index unreachable: %w", err)
		}
	}
	return nil
}

// Close implements Index. Closing the last connection checkpoints the WAL
// into the database file (and fsyncs it).
func (x *SQLiteIndex) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{x.current, x.upPatient, x.upStudy, x.upSeries, x.upInstance, x.upSegment,
		x.forgetSegment, x.upActivity, x.selPatient, x.selStudy, x.selSeries, x.lookup, x.count, x.segments, x.maxSeq} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if x.r != nil {
		errs = append(errs, x.r.Close())
	}
	errs = append(errs, x.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close index: %w", err)
	}
	return nil
}
