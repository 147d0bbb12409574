// Package deident de-identifies DICOM data sets with the Basic
// Application Level Confidentiality Profile of PS3.15 Annex E and keeps,
// locally, the map that re-identifies them.
//
// The entry points are:
//
//   - [Table] and [Rule]: PS3.15 Table E.1-1, every row with a single tag
//     (456 rows of the edition transcribed, see table.go for its
//     provenance), with the Basic Profile [Action] and the action of every
//     option column.
//   - [Options], [New] and [Deidentifier]: [Deidentifier.Dataset]
//     de-identifies a parsed data set in place; [Deidentifier.File] reads
//     and writes a Part 10 file (PS3.10 7.1) with a new File Meta
//     Information. Both return a [Record] of the new identifiers.
//   - [SafePixels]: whether pixel data may carry burned-in text.
//   - [OpenMap] and [Map]: the site secret and the re-identification map.
//
// What Dataset does, beyond the table's rows (PS3.15 E.1.1, E.2, E.3):
//
//   - UIDs (U) become "2.25." and the decimal of the first 128 bits of
//     HMAC-SHA-256(site secret, original UID), so that series and studies
//     stay together and references (Referenced SOP Instance UID, Frame of
//     Reference UID, …, at any depth) follow the instances they name,
//     across files and runs at one site. SOP Class and Transfer Syntax
//     UIDs are not in the table and are kept.
//   - Patient ID, Patient's Name and Accession Number (Z) get keyed
//     pseudonyms: ID = base32 of an HMAC of the original ID, Name =
//     "ANON^" + that ID, Accession = an HMAC of the original accession.
//   - Compound codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) resolve to the choice
//     that keeps any IOD conformant without knowing it: D wherever D is
//     allowed, Z for X/Z, and for X/Z/U* the sequence is kept and its
//     items cleaned. D gives fixed dummies (a sequence: one empty item).
//   - DA, DT and TM attributes that are not in the table (Instance
//     Creation Date, Date/Time of SR content items, …; PS3.15 E.1.1 Note
//     4) are handled by VR, as the table's date rows: a dummy, kept with
//     Full Dates, shifted with Modified Dates. Context Group and Template
//     versions are kept. Under Modified Dates, DA and DT values move back
//     by whole days; TM values stay, and binary timestamps (Frame Origin
//     Timestamp) are removed.
//   - Private attributes (odd groups) are removed: the Retain Safe Private
//     Option is not supported. Curve (50xx) and overlay (60xx) groups are
//     removed whole. Every sequence is walked (to MaxDepth) and the same
//     rules apply in its items; attributes not in the table are kept.
//   - The options implemented are listed on [Options]; C ("clean") is
//     implemented only as the date shift of the Modified Dates option —
//     elsewhere it falls back to the Basic Profile action, so Clean
//     Descriptors removes descriptors rather than rewriting them. Clean
//     Structured Content, Clean Graphics, Clean Pixel Data and Clean
//     Recognizable Visual Features are not implemented.
//   - Patient Identity Removed (0012,0062) = YES, De-identification
//     Method (0012,0063), De-identification Method Code Sequence
//     (0012,0064) with the CID 7050 codes of the profile and options, and
//     Longitudinal Temporal Information Modified (0028,0303) are set.
//
// Burned-in identification: the Basic Profile does not clean pixels. An
// instance whose Burned In Annotation (0028,0301) is YES — or absent for
// modalities and SOP classes that routinely burn text in (US, secondary
// capture, photographs, video, documents) — is refused with ErrBurnedIn
// rather than emitted with identifying pixels; see SafePixels.
//
// The map holds PHI. The directory (DataDir/deident, mode 0700) holds the
// site secret (files mode 0600): whoever has it can recompute every
// pseudonym and test guesses of a patient's identity against published
// data, so it never leaves the site and is never logged. map.jsonl
// (0600, append-only, one JSON object per line, fsync'd once per
// Dataset call before the de-identified data set is returned) holds the
// original Patient IDs, names, accession numbers and Study, Series and SOP
// Instance UIDs next to their pseudonyms: it is the means by which an
// authorised person re-identifies a result ([Map.Lookup]) and must be
// protected as the originals are. No error or Record of this package
// carries an original value.
package deident
