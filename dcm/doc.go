// Package dcm reads and writes the parts of DICOM that radgate needs on
// every received instance, without holding bulk data in memory.
//
// The entry points are:
//
//   - [TransferSyntax], [LookupTransferSyntax] and [TransferSyntaxes]: the
//     transfer syntaxes radgate accepts (PS3.5 Section 10, PS3.6 Table A-1).
//   - [IsStorageSOPClass] and [UIDName]: the Storage SOP classes of PS3.4
//     Annex B and human names for registered UIDs (PS3.6 Annex A).
//   - [FileMeta], [WriteFileMeta] and [OpenPart10]: the Part 10 preamble,
//     "DICM" prefix and File Meta Information group 0002 (PS3.10 Section 7.1).
//   - [ScanDataset]: a streaming, bounded walk over a whole data set
//     (PS3.5 Section 7) that validates its structure and returns selected
//     top-level attributes as [Attributes].
//   - [Tag] and the tag constants the index stores (PS3.6 Section 6).
//   - [HashUID]: UIDs derived from names (PS3.5 B.2), so that what radgate
//     makes twice from the same inputs (a phantom, an SR) has the same UID;
//     [UIDRef]: a UID hashed for logs.
//
// Every decoder checks declared lengths against named limits before
// allocating, returns errors wrapping [ErrMalformed] or [ErrNotDICOM], and
// never panics on hostile input. The package holds no mutable state: its
// only package-level variables are read-only tables.
package dcm
