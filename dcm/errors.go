package dcm

import "errors"

var (
	// ErrNotDICOM is returned by OpenPart10 when the stream carries neither a
	// Part 10 header (PS3.10 7.1) nor a recognizable data set.
	ErrNotDICOM = errors.New("dcm: not a DICOM stream")
	// ErrMalformed is wrapped by every error that reports a structural
	// problem in the file meta or data set encoding (PS3.5 Section 7),
	// including truncation and exceeded limits.
	ErrMalformed = errors.New("dcm: malformed data set")
	// ErrInvalidFileMeta is returned by WriteFileMeta when a FileMeta value
	// cannot be encoded (PS3.10 7.1, PS3.5 6.2 value lengths).
	ErrInvalidFileMeta = errors.New("dcm: invalid file meta information")
)

// Limits. They bound what a peer can make the decoders read or hold.
const (
	// MaxFileMetaLength bounds the File Meta Information (group 0002) that
	// OpenPart10 accepts. Real meta groups are a few hundred bytes.
	MaxFileMetaLength = 64 << 10
	// MaxValueLength bounds the value of a wanted attribute that
	// ScanDataset returns; longer wanted values are skipped, not returned.
	MaxValueLength = 64 << 10
	// MaxDepth bounds the nesting of sequences and items (PS3.5 7.5) that
	// ScanDataset follows.
	MaxDepth = 64
	// maxSniffLength bounds how much of a data set without file meta
	// OpenPart10 buffers while looking for the SOP Class and Instance UIDs.
	maxSniffLength = 64 << 10
	// scanBufferSize is the read buffer of ScanDataset.
	scanBufferSize = 64 << 10
)
