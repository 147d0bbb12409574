package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors; decoders wrap them with %w and a reason.
var (
	// ErrUnsupported: the transfer syntax (or a variant inside it, such as a
	// JPEG process) is not one this package decodes.
	ErrUnsupported = errors.New("codec: unsupported compression")
	// ErrCorrupt: the compressed bytes do not decode to the declared frame.
	ErrCorrupt = errors.New("codec: corrupt compressed frame")
)

// maxFrameSamples bounds Rows×Cols×SamplesPerPixel of one frame, checked
// before anything is allocated. 2^28 samples is a 16384×16384 monochrome
// frame (512 MiB at 16 bits, 1 GiB at 32), beyond what any modality emits;
// a larger declaration is refused rather than trusted.
const maxFrameSamples = 1 << 28

// Transfer syntax UIDs this package decodes (PS3.6 Table A-1).
const (
	tsRLELossless        = "1.2.840.10008.1.2.5"
	tsJPEGBaseline       = "1.2.840.10008.1.2.4.50"
	tsJPEGExtended       = "1.2.840.10008.1.2.4.51"
	tsJPEGLossless       = "1.2.840.10008.1.2.4.57"
	tsJPEGLosslessSV1    = "1.2.840.10008.1.2.4.70"
	tsJPEGLSLossless     = "1.2.840.10008.1.2.4.80"
	tsJPEGLSNearLossless = "1.2.840.10008.1.2.4.81"
	tsJ2KLossless        = "1.2.840.10008.1.2.4.90"
	tsJ2K                = "1.2.840.10008.1.2.4.91"
	tsHTJ2KLossless      = "1.2.840.10008.1.2.4.201"
	tsHTJ2KLosslessRPCL  = "1.2.840.10008.1.2.4.202"
	tsHTJ2K              = "1.2.840.10008.1.2.4.203"
)

// Params describes the frame the data set declares (Image Pixel module,
// PS3.3 C.7.6.3). Decoders check what they decode against it.
type Params struct {
	Rows, Cols                int
	SamplesPerPixel           int
	BitsAllocated             int // 8, 16 (32 for RLE)
	BitsStored                int
	PixelRepresentation       int    // 0 unsigned, 1 two's complement
	PhotometricInterpretation string // as declared by the data set
}

// Frame is one decoded frame in native layout: little-endian samples of
// Params.BitsAllocated bits, samples of a pixel interleaved (Planar
// Configuration 0), Rows×Cols×SamplesPerPixel×BitsAllocated/8 bytes.
type Frame struct {
	Pixels []byte
	// PhotometricInterpretation of Pixels: as declared, except where the
	// decoder converted colour (for example YBR_FULL_422 JPEG → RGB).
	PhotometricInterpretation string
	// PixelRepresentation of Pixels: as declared, except where the
	// codestream itself records the signedness (JPEG 2000 SIZ Ssiz) and
	// disagrees; the codestream wins, because that is how the samples were
	// encoded (PS3.5 8.2.4 requires them to agree).
	PixelRepresentation int
}

// Supported reports whether Decode handles the transfer syntax.
func Supported(transferSyntaxUID string) bool {
	_, ok := decoders[transferSyntaxUID]
	return ok
}

// Decode decodes one frame's compressed bytes (the concatenated fragments
// of that frame) of the given transfer syntax.
func Decode(transferSyntaxUID string, data []byte, p Params) (Frame, error) {
	d, ok := decoders[transferSyntaxUID]
	if !ok {
		return Frame{}, fmt.Errorf("%w: transfer syntax %q", ErrUnsupported, transferSyntaxUID)
	}
	n, err := p.frameLen()
	if err != nil {
		return Frame{}, err
	}
	if len(data) == 0 {
		return Frame{}, fmt.Errorf("%w: no compressed bytes", ErrCorrupt)
	}
	f, err := d(data, p)
	if err != nil {
		return Frame{}, err
	}
	if len(f.Pixels) != n {
		// Every decoder sizes its output from p; this guards the contract.
		return Frame{}, fmt.Errorf("%w: decoded %d bytes, frame needs %d", ErrCorrupt, len(f.Pixels), n)
	}
	return f, nil
}

type decoder func(data []byte, p Params) (Frame, error)

// decoders maps a transfer syntax UID to its decoder.
var decoders = map[string]decoder{
	tsRLELossless:        decodeRLE,
	tsJPEGBaseline:       decodeJPEG,
	tsJPEGExtended:       decodeJPEG,
	tsJPEGLossless:       decodeJPEG,
	tsJPEGLosslessSV1:    decodeJPEG,
	tsJPEGLSLossless:     decodeJPEGLS,
	tsJPEGLSNearLossless: decodeJPEGLS,
	tsJ2KLossless:        decodeJ2K,
	tsJ2K:                decodeJ2K,
	// OpenJPEG ≥ 2.5 decodes HTJ2K (ITU-T T.814) through the same API.
	tsHTJ2KLossless:     decodeJ2K,
	tsHTJ2KLosslessRPCL: decodeJ2K,
	tsHTJ2K:             decodeJ2K,
}

// frameLen validates the declared Image Pixel attributes (PS3.3 C.7.6.3.1)
// and returns the native frame size in bytes.
func (p Params) frameLen() (int, error) {
	switch {
	case p.Rows <= 0 || p.Rows > 0xFFFF || p.Cols <= 0 || p.Cols > 0xFFFF:
		// Rows and Columns are US (PS3.3 C.7.6.3).
		return 0, fmt.Errorf("%w: declared size %d×%d", ErrCorrupt, p.Cols, p.Rows)
	case p.SamplesPerPixel != 1 && p.SamplesPerPixel != 3:
		return 0, fmt.Errorf("%w: %d samples per pixel", ErrUnsupported, p.SamplesPerPixel)
	case p.BitsAllocated != 8 && p.BitsAllocated != 16 && p.BitsAllocated != 32:
		return 0, fmt.Errorf("%w: bits allocated %d", ErrUnsupported, p.BitsAllocated)
	case p.BitsStored < 1 || p.BitsStored > p.BitsAllocated:
		return 0, fmt.Errorf("%w: bits stored %d with bits allocated %d", ErrCorrupt, p.BitsStored, p.BitsAllocated)
	case p.PixelRepresentation != 0 && p.PixelRepresentation != 1:
		return 0, fmt.Errorf("%w: pixel representation %d", ErrCorrupt, p.PixelRepresentation)
	}
	samples := p.Rows * p.Cols * p.SamplesPerPixel
	if samples > maxFrameSamples {
		return 0, fmt.Errorf("%w: %d×%d×%d samples exceed the limit of %d", ErrUnsupported, p.Cols, p.Rows, p.SamplesPerPixel, maxFrameSamples)
	}
	return samples * p.BitsAllocated / 8, nil
}

// newFrame returns the output frame for p with the declared photometric
// interpretation and pixel representation; decoders change what they
// converted.
func newFrame(p Params) Frame {
	n, _ := p.frameLen() // Decode validated p already
	return Frame{
		Pixels:                    make([]byte, n),
		PhotometricInterpretation: p.PhotometricInterpretation,
		PixelRepresentation:       p.PixelRepresentation,
	}
}

// putSample stores sample i (counted over the whole frame, samples
// interleaved) as a little-endian value of bitsAllocated bits, keeping the
// low bits: negative values come out in two's complement.
func putSample(pix []byte, i int, v uint32, bitsAllocated int) {
	switch bitsAllocated {
	case 8:
		pix[i] = byte(v)
	case 16:
		binary.LittleEndian.PutUint16(pix[2*i:], uint16(v))
	default:
		binary.LittleEndian.PutUint32(pix[4*i:], v)
	}
}
