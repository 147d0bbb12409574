package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/store"
)

// The audit trail (PS3.15 A.5) of every PHI access and change: ingest and
// DICOMweb record through ingest.Recorder; here are the gateway's own —
// start and stop with the configuration's fingerprint, refused tokens,
// deliveries (SR/KOS to a PACS, notifications to the EHR and RIS), and
// priority changes, read from the worklist's durable event log.

const (
	// auditDir is the trail's folder under data_dir.
	auditDir = "audit"
	// worklistCursor records the last worklist event audited, so a restart
	// neither skips nor repeats one.
	worklistCursor = "worklist-audit.cursor"
	// worklistAuditPoll is how often the event log is read.
	worklistAuditPoll = 500 * time.Millisecond
	// worklistAuditBatch bounds the events read at once.
	worklistAuditBatch = 256
)

// openAudit opens the trail and hands ingest (and through it DICOMweb)
// its recorder.
func (g *Gateway) openAudit(cfg *config.Config, ing *ingest.Service) error {
	t, err := audit.Open(filepath.Join(cfg.DataDir, auditDir), audit.Options{
		SourceID: cfg.AETitle, Retention: cfg.AuditRetention, Registerer: g.reg,
		Syslog: cfg.AuditSyslog, SyslogCA: cfg.AuditSyslogCA, SyslogCert: cfg.AuditSyslogCert, SyslogKey: cfg.AuditSyslogKey,
	}, g.log)
	if err != nil {
		return fmt.Errorf("gateway: audit trail: %w", err)
	}
	g.trail = t
	ing.AuditTo(cfg.AETitle, g.record)
	return nil
}

// record queues m; a trail that cannot take it is an error in the log
// (the trail's own metric counts it) but never stops the work audited.
func (g *Gateway) record(m audit.Message) {
	if err := g.trail.Record(context.Background(), m); err != nil {
		g.log.Error("audit: record not kept", "event", m.Event.EventID.OriginalText, "err", err)
	}
}

// self is radgate as an audit participant.
func (g *Gateway) self() audit.Node {
	return audit.Node{ID: g.cfg.AETitle, Alt: strconv.Itoa(os.Getpid())}
}

// fingerprint digests the effective settings: a changed configuration is a
// Security Alert at the next start. Only the digest is kept.
func fingerprint(cfg *config.Config) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%+v", *cfg))
	return hex.EncodeToString(sum[:])
}

// auditStart records Application Start (and a configuration change).
func (g *Gateway) auditStart(ctx context.Context) {
	a := audit.AppEvent{App: g.self(), Launcher: audit.Node{ID: "uid:" + strconv.Itoa(os.Getuid())}}
	if err := g.trail.Started(ctx, a, fingerprint(g.cfg)); err != nil {
		g.log.Error("audit: start not recorded", "err", err)
	}
}

// auditStop records Application Stop and waits for the trail to hold it.
func (g *Gateway) auditStop(ctx context.Context) {
	g.record(audit.ApplicationStop(audit.AppEvent{App: g.self()}))
	if err := g.trail.Flush(ctx); err != nil {
		g.log.Error("audit: flush at stop", "err", err)
	}
}

// authFailed is every refusal the token verifier makes.
func (g *Gateway) authFailed(f auth.Failure) {
	g.record(audit.AuthenticationFailed(audit.AuthEvent{
		Header: audit.Header{Description: f.Reason + " (" + f.Method + ")"},
		User:   audit.Node{ID: f.Subject, Addr: f.Remote},
		Node:   g.self(),
	}))
}

// delivered records a delivery made: an SR or KOS sent to a PACS is DICOM
// Instances Transferred; a FHIR, HL7 or UPS notification is a Data Export.
func (g *Gateway) delivered(ctx context.Context, d store.Delivery) {
	var subjects []ingest.Subject
	if d.StudyInstanceUID != "" {
		if ins, err := g.store.Work().StudyInstances(ctx, d.StudyInstanceUID); err == nil {
			subjects = ingest.Subjects(ins)
		}
	}
	if len(subjects) == 0 {
		subjects = []ingest.Subject{{}} // the study is gone: the destination is still recorded
	}
	dest := delivery.Redact(d.Destination)
	for _, s := range subjects {
		switch d.Kind {
		case "sr", "kos":
			sent := []audit.Study{{UID: firstStudy(s), SOPClasses: map[string]int{d.SOPClassUID: 1}}}
			g.record(audit.InstancesSent(audit.Transfer{From: g.self(), To: audit.Node{ID: dest}, Patient: s.Patient, Studies: sent}))
		default:
			g.record(audit.DataExport(audit.ExportEvent{Exporter: g.self(), Destination: dest, Patient: s.Patient, Studies: s.Studies}))
		}
	}
}

func firstStudy(s ingest.Subject) string {
	if len(s.Studies) > 0 {
		return s.Studies[0].UID
	}
	return ""
}

// auditWorklist records every priority change of the worklist (a model's
// finding or a person) as a Procedure Record update, from the durable
// event log, until ctx ends.
func (g *Gateway) auditWorklist(ctx context.Context) error {
	path := filepath.Join(g.cfg.DataDir, worklistCursor)
	after, err := readCursor(path)
	if err != nil {
		return err
	}
	tick := time.NewTicker(worklistAuditPoll)
	defer tick.Stop()
	for {
		evs, err := g.store.Worklist().WorklistEvents(ctx, after, worklistAuditBatch)
		if err != nil && ctx.Err() == nil {
			g.log.Warn("audit: reading the worklist events failed; retrying", "err", err)
		}
		for _, e := range evs {
			if e.Kind == "priority" && e.From != e.To {
				g.auditPriority(ctx, e)
			}
			after = e.Seq
		}
		if len(evs) > 0 {
			if err := writeCursor(path, after); err != nil {
				g.log.Error("audit: saving the worklist cursor failed", "err", err)
			}
		}
		if len(evs) == worklistAuditBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (g *Gateway) auditPriority(ctx context.Context, e store.WorklistEvent) {
	var s ingest.Subject
	if ins, err := g.store.Work().StudyInstances(ctx, e.StudyInstanceUID); err == nil {
		if subs := ingest.Subjects(ins); len(subs) > 0 {
			s = subs[0]
		}
	}
	study := audit.Study{UID: e.StudyInstanceUID}
	if len(s.Studies) > 0 {
		study = s.Studies[0]
	}
	g.record(audit.PriorityChanged(audit.PriorityEvent{
		Header: audit.Header{Time: e.At}, User: audit.Node{ID: e.Actor}, Patient: s.Patient, Study: study, From: e.From, To: e.To,
	}))
}

func readCursor(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("gateway: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("gateway: %s: %w", path, err)
	}
	return n, nil
}

// writeCursor replaces the cursor file atomically.
func writeCursor(path string, seq uint64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
