package deident

import (
	"errors"

	"github.com/radgate/radgate/imaging"
)

// Errors. None of them, nor any error this package returns, carries an
// attribute value: they may be logged, and the values are PHI.
var (
	// ErrBurnedIn is returned by SafePixels and Dataset when the pixel
	// data may carry burned-in identifying text (PS3.15 E.1.1 Note 5: the
	// Basic Profile does not clean pixels, and this package implements no
	// Clean Pixel Data Option).
	ErrBurnedIn = errors.New("deident: pixel data may carry burned-in identification")
	// ErrOptions is returned by New for options that cannot be combined.
	ErrOptions = errors.New("deident: invalid options")
	// ErrNoMap is returned by New without a re-identification map.
	ErrNoMap = errors.New("deident: no re-identification map")
	// ErrMalformed wraps every error about input that is not a DICOM data
	// set this package can read.
	ErrMalformed = errors.New("deident: malformed DICOM input")
	// ErrTooLarge is returned by File for input over MaxFileBytes.
	ErrTooLarge = errors.New("deident: input too large")
	// ErrTooDeep is returned for sequences nested deeper than MaxDepth.
	ErrTooDeep = errors.New("deident: sequences nested too deep")
	// ErrUnsupported is returned for encodings the writer cannot produce
	// (Deflated Explicit VR Little Endian, PS3.5 A.5).
	ErrUnsupported = errors.New("deident: unsupported encoding")
	// ErrMapCorrupt is returned by OpenMap when the map file holds a line
	// that is not a map entry (other than a torn last line, which is cut).
	ErrMapCorrupt = errors.New("deident: re-identification map corrupt")
	// ErrMapClosed is returned by a Map, and by a Deidentifier using it,
	// after Close.
	ErrMapClosed = errors.New("deident: re-identification map closed")
)

// Limits, checked before anything a caller's input asks for is allocated.
const (
	// MaxFileBytes bounds one Part 10 file that File reads into memory: the
	// gateway's bound on one instance.
	MaxFileBytes = imaging.MaxInstanceBytes
	// MaxDepth bounds the nesting of sequences that Dataset walks; real
	// objects nest a handful deep (SR content trees the most).
	MaxDepth = 64
	// MaxMapLineBytes bounds one line of the map file: an entry holds one
	// original value (at most a 64-character UID or a PN of 3 × 64
	// characters per component group) and its pseudonym.
	MaxMapLineBytes = 64 << 10
	// MaxDateShiftDays bounds the per-patient date offset of the Retain
	// Longitudinal Temporal Information with Modified Dates Option: dates
	// move back 1 to MaxDateShiftDays days (about ten years).
	MaxDateShiftDays = 3652
)
