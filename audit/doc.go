// Package audit writes radgate's security audit trail: DICOM audit messages
// (PS3.15 A.5, an extension of RFC 3881) in an append-only, hash-chained
// file trail, checked by Verify and optionally forwarded to a syslog
// collector (RFC 5424 over RFC 5425 TLS, as IHE ATNA does).
//
// Entry types:
//
//   - Message: one audit message (PS3.15 A.5.1 schema); Marshal/Unmarshal.
//     Constructors build the messages radgate emits from plain values.
//   - Trail: Open(dir, Options, logger), Record, Flush, Started, Close.
//   - Verify / VerifyProgress: re-read a stopped or running trail, read-only.
//
// # Events (PS3.15 A.5.3) radgate emits
//
//	instances received (C-STORE SCP, STOW-RS)  InstancesReceived        A.5.3.7  110104 DICOM Instances Transferred, C
//	study retrieved (WADO-RS)                  StudyRetrieved           A.5.3.7  110104, R (requestor: the client)
//	SR/KOS sent to a PACS                      InstancesSent            A.5.3.7  110104, R (requestor: radgate)
//	search (QIDO-RS, UPS search)               Query                    A.5.3.10 110112 Query, E
//	worklist priority changed                  PriorityChanged          A.5.3.15 110111 Procedure Record, U
//	FHIR notification sent to the EHR          DataExport               A.5.3.4  110106 Export, R
//	bad/expired/wrong-audience/scope token     AuthenticationFailed     A.5.3.12 110114 User Authentication / 110122 Login, outcome 4
//	refused TLS client certificate             NodeAuthenticationFailed A.5.3.11 110113 Security Alert / 110126 Node Authentication, outcome 4
//	start, stop                                ApplicationStart/Stop    A.5.3.1  110100 Application Activity / 110120, 110121
//	configuration changed since last start,    ConfigurationChanged     A.5.3.11 110113 Security Alert / 110131 Software Configuration
//	or blob_key_file rotated while running
//	study purged (retention, DELETE)           StudyDeleted             A.5.3.8  110105 DICOM Study Deleted, D
//	audit trail read or verified               AuditLogUsed             A.5.3.2  110101 Audit Log Used, R
//	audit files pruned by retention            (the Trail itself)       A.5.3.2  110101 Audit Log Used, D — an extension:
//	                                                                    PS3.15 has no message for deleting audit data
//
// Trail.Started records Application Start and compares the caller's
// configuration fingerprint with the one kept in DIR/CONFIG at the last
// start, adding the Software Configuration alert when it differs (also on
// the first start, when there is none to compare with).
//
// The schema makes ParticipantObjectName or ParticipantObjectQuery
// mandatory: study objects carry the Study Instance UID as their name, and
// a patient whose name is unknown carries the Patient ID. Patient ID and
// name are in the trail because A.5.3 requires them; they never go into a
// log line or an error.
//
// # Trail layout
//
// DIR (the gateway passes DataDir/audit) holds:
//
//	audit-YYYYMMDD-<first seq, 20 digits>.jsonl  one JSON record per line: seq, time, prev, msg (the XML), hash
//	chain.key    32 random bytes, hex, mode 0600, made on the first Open of an empty trail
//	HEAD         the last committed seq and hash, MACed; replaced atomically on each group commit
//	ANCHOR       where the chain starts after pruning: first kept seq and its prev hash, MACed
//	CONFIG       the configuration fingerprint of the last start
//	syslog.cursor  the last seq sent to the syslog collector
//
// hash is HMAC-SHA-256 under chain.key over the length-prefixed (seq,
// time, prev, msg); prev is the previous record's hash (64 zeros for the
// first record of a never-pruned trail). A line must be the record's one
// canonical JSON encoding, so any edited byte is found even where JSON
// would not care. Files rotate each UTC day and past Options.MaxFileBytes;
// the chain runs across them.
//
// What the key protects against: someone who can write the files but not
// read chain.key (a restored or copied trail, an edit through another
// path, a backup tampered with) cannot edit, insert, delete, reorder or
// cut records, nor rewrite HEAD or ANCHOR to match, without Verify seeing
// it. What it does not: anyone who can read chain.key (root on the host,
// the radgate user) can rewrite the trail and recompute every hash; and
// deleting the whole folder, or replacing HEAD, ANCHOR and the files
// together with an older complete copy, leaves nothing local to compare
// with. Forwarding to a collector on another host (Options.Syslog) is the
// defence against both: the collector has its own copy.
//
// # Durability and crashes
//
// Record encodes the message and queues it; the Trail's writer goroutine
// appends it and commits in groups (write, fsync, then HEAD) at most every
// Options.CommitInterval (100 ms), or at once when Flush asks; Flush
// returns when everything queued before it is durable, and Close flushes.
// A crash can leave a partial last line that was never fsynced and so
// never acknowledged by Flush: Open cuts it off (logging the cut) and
// continues the chain from the last whole record, while Verify on a
// stopped trail reports it as a truncation, since it cannot tell a crash
// from a cut. Any other damage makes Open fail.
//
// # Retention
//
// Options.Retention defaults to six years, counted as 6*365+2 days
// (DefaultRetention). Whole files whose day ended before now−Retention are
// removed, oldest first, never the current file: ANCHOR is first moved to
// the first kept record, then the files are removed, then the prune is
// recorded. Verify skips files wholly before ANCHOR (left by a prune
// interrupted between those steps).
//
// # Verify
//
// Verify reads the trail without writing anything (no lock, no repair, no
// Audit Log Used record — the CLI `radgate audit verify` is read-only, so
// it may run beside a running gateway; a record appended during the run
// may show as beyond HEAD, which is allowed). It checks seq continuity,
// prev links, hashes, HEAD (a cut tail) and ANCHOR (a missing first file)
// and returns the first break as a *BreakError.
//
// # Syslog
//
// With Options.Syslog set, a forwarder goroutine reads the durable trail
// from the seq after syslog.cursor and sends each record as an RFC 5424
// message: PRI facility 10 (authpriv), severity 5 (notice) or 4 (warning)
// for a failure outcome, APP-NAME radgate, MSGID IHE+RFC-3881, no
// structured data, MSG the XML after a UTF-8 BOM; octet-counted framing
// (RFC 5425 4.3) over TLS 1.2+ (tls://) or plain TCP (tcp://). When the
// collector is down it retries with exponential backoff (200 ms to 1 min);
// nothing is lost, since it resends from the trail. Delivery is at least
// once.
//
// Metrics: radgate_audit_records_total, radgate_audit_errors_total,
// radgate_audit_forwarded_total, radgate_audit_forward_errors_total,
// radgate_audit_forward_pending.
package audit
