package codec

// #cgo LDFLAGS: -lcharls
// #include <stdlib.h>
// #include <charls/charls.h>
import "C"

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unsafe"
)

// jlsError converts a CharLS status at the boundary; every CharLS error
// means the stream is not a valid JPEG-LS frame, except the parameter and
// feature errors CharLS reports as "not supported".
func jlsError(step string, rc C.charls_jpegls_errc) error {
	msg := C.GoString(C.charls_get_error_message(rc))
	sentinel := ErrCorrupt
	switch rc {
	case C.CHARLS_JPEGLS_ERRC_ENCODING_NOT_SUPPORTED,
		C.CHARLS_JPEGLS_ERRC_PARAMETER_VALUE_NOT_SUPPORTED,
		C.CHARLS_JPEGLS_ERRC_BIT_DEPTH_FOR_TRANSFORM_NOT_SUPPORTED,
		C.CHARLS_JPEGLS_ERRC_COLOR_TRANSFORM_NOT_SUPPORTED:
		sentinel = ErrUnsupported
	}
	return fmt.Errorf("%w: jpeg-ls: %s: %s (CharLS error %d)", sentinel, step, msg, int(rc))
}

// decodeJPEGLS decodes JPEG-LS lossless and near-lossless (PS3.5 8.2.3,
// ITU-T T.87) with CharLS. The header is checked against Params before
// CharLS decodes into the output buffer.
func decodeJPEGLS(data []byte, p Params) (Frame, error) {
	// T.87 ends every stream with EOI; DICOM pads a fragment to even length
	// with a zero byte (PS3.5 A.4). Requiring the EOI also keeps CharLS
	// 2.4 from crawling (seconds for a 64×64 frame) through a stream that
	// simply stops.
	if !bytes.HasSuffix(bytes.TrimRight(data, "\x00"), []byte{0xFF, 0xD9}) {
		return Frame{}, fmt.Errorf("%w: jpeg-ls: stream does not end with an EOI marker (truncated)", ErrCorrupt)
	}
	dec := C.charls_jpegls_decoder_create()
	if dec == nil {
		return Frame{}, fmt.Errorf("%w: jpeg-ls: CharLS could not create a decoder", ErrUnsupported)
	}
	defer C.charls_jpegls_decoder_destroy(dec)
	// CharLS keeps the source pointer between calls, so it must be C memory
	// (cgo pointer rules); the copy lives until the decoder is destroyed.
	src := C.CBytes(data)
	defer C.free(src)
	if rc := C.charls_jpegls_decoder_set_source_buffer(dec, src, C.size_t(len(data))); rc != 0 {
		return Frame{}, jlsError("source", rc)
	}
	if rc := C.charls_jpegls_decoder_read_header(dec); rc != 0 {
		return Frame{}, jlsError("header", rc)
	}
	var info C.charls_frame_info
	if rc := C.charls_jpegls_decoder_get_frame_info(dec, &info); rc != 0 {
		return Frame{}, jlsError("frame info", rc)
	}
	var ilv C.charls_interleave_mode
	if rc := C.charls_jpegls_decoder_get_interleave_mode(dec, &ilv); rc != 0 {
		return Frame{}, jlsError("interleave mode", rc)
	}
	w, h, nc, bits := int(info.width), int(info.height), int(info.component_count), int(info.bits_per_sample)
	switch {
	case w != p.Cols || h != p.Rows:
		return Frame{}, fmt.Errorf("%w: jpeg-ls: frame is %d×%d, data set declares %d×%d", ErrCorrupt, w, h, p.Cols, p.Rows)
	case nc != p.SamplesPerPixel:
		return Frame{}, fmt.Errorf("%w: jpeg-ls: %d components, data set declares %d samples per pixel", ErrCorrupt, nc, p.SamplesPerPixel)
	case bits < 2 || bits > 16 || bits > p.BitsAllocated:
		return Frame{}, fmt.Errorf("%w: jpeg-ls: %d-bit samples with bits allocated %d", ErrCorrupt, bits, p.BitsAllocated)
	}
	// CharLS writes samples of ≤8 bits as bytes, wider ones as native
	// uint16; with stride 0 the rows are packed.
	width := 1
	if bits > 8 {
		width = 2
	}
	var need C.size_t
	if rc := C.charls_jpegls_decoder_get_destination_size(dec, 0, &need); rc != 0 {
		return Frame{}, jlsError("destination size", rc)
	}
	samples := w * h * nc
	if int(need) != samples*width {
		return Frame{}, fmt.Errorf("%w: jpeg-ls: CharLS needs %d bytes for %d samples", ErrCorrupt, need, samples)
	}
	raw := make([]byte, samples*width)
	if rc := C.charls_jpegls_decoder_decode_to_buffer(dec, unsafe.Pointer(&raw[0]), need, 0); rc != 0 {
		return Frame{}, jlsError("decode", rc)
	}
	f := newFrame(p)
	// Interleave mode none gives one plane per component; line and sample
	// interleaving come out pixel-interleaved (CharLS 2 decode_to_buffer).
	planar := ilv == C.CHARLS_INTERLEAVE_MODE_NONE && nc > 1
	for i := 0; i < samples; i++ {
		j := i
		if planar {
			j = (i%nc)*w*h + i/nc
		}
		v := uint32(raw[j])
		if width == 2 {
			v = uint32(binary.NativeEndian.Uint16(raw[2*j:]))
		}
		putSample(f.Pixels, i, v, p.BitsAllocated)
	}
	return f, nil
}
