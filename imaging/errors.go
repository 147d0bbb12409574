package imaging

import "errors"

// Sentinel errors. Load, Apply and SortSlices wrap them with %w and the
// reason, so callers match with errors.Is and log the message.
var (
	// ErrNotDICOM: the stream is not a DICOM Part 10 file (no "DICM"
	// prefix after the 128-byte preamble, PS3.10 7.1).
	ErrNotDICOM = errors.New("imaging: not a DICOM Part 10 stream")
	// ErrNotImage: a valid data set without Pixel Data (7FE0,0010) and
	// without the Image Pixel module (an SR, a plan, a KOS ...).
	ErrNotImage = errors.New("imaging: instance has no pixel data")
	// ErrUnsupportedTransferSyntax: the transfer syntax is unknown, or the
	// codec package cannot decode it (yet).
	ErrUnsupportedTransferSyntax = errors.New("imaging: unsupported transfer syntax")
	// ErrUnsupportedPixelFormat: a pixel layout this package does not
	// convert (BitsAllocated 1, PALETTE COLOR, a Modality LUT Sequence ...).
	ErrUnsupportedPixelFormat = errors.New("imaging: unsupported pixel format")
	// ErrCorrupt: the data set or its pixel data is malformed or truncated,
	// or declared sizes disagree with the bytes present.
	ErrCorrupt = errors.New("imaging: corrupt instance")
	// ErrTooLarge: a declared size exceeds one of the limits below.
	ErrTooLarge = errors.New("imaging: instance exceeds a size limit")
	// ErrFrame: a frame index outside 0..Frames-1.
	ErrFrame = errors.New("imaging: frame index out of range")
	// ErrRecipe: an invalid Recipe, or a destination of the wrong length.
	ErrRecipe = errors.New("imaging: invalid recipe")
	// ErrGeometry: slices without geometry, or whose orientations differ.
	ErrGeometry = errors.New("imaging: inconsistent slice geometry")
)

// Limits, checked before anything a file declares is allocated.
const (
	// MaxInstanceBytes bounds one Part 10 stream, and the inflated data set
	// of a deflated one (a deflate bomb stops here).
	MaxInstanceBytes = 1 << 30
	// MaxDimension bounds Rows and Columns; Rows and Columns are US (at
	// most 65535, PS3.3 C.7.6.3) but no modality this gateway serves comes
	// near 16384 (mammography is about 4096×3328).
	MaxDimension = 16384
	// MaxFrames bounds NumberOfFrames.
	MaxFrames = 65536
	// MaxPixels bounds Rows×Columns×Frames of one instance: the decoded
	// modality values are 4 bytes each, so 1 GiB.
	MaxPixels = 1 << 28
	// MaxOutputSize bounds a recipe's output height and width.
	MaxOutputSize = 4096
)
