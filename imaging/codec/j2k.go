package codec

/*
#cgo pkg-config: libopenjp2
#include <stdlib.h>
#include <string.h>
#include <openjpeg.h>

// rg_buf is the in-memory stream OpenJPEG reads through the callbacks.
typedef struct {
	const unsigned char *data;
	size_t len, pos;
} rg_buf;

// rg_log collects OpenJPEG's error and warning text for the Go error.
typedef struct {
	char text[1024];
	size_t n;
} rg_log;

static OPJ_SIZE_T rg_read(void *dst, OPJ_SIZE_T n, void *user) {
	rg_buf *b = user;
	if (b->pos >= b->len) {
		return (OPJ_SIZE_T)-1; // end of stream, as opj_stream_read_data expects
	}
	size_t k = b->len - b->pos;
	if (k > n) {
		k = n;
	}
	memcpy(dst, b->data + b->pos, k);
	b->pos += k;
	return k;
}

static OPJ_OFF_T rg_skip(OPJ_OFF_T n, void *user) {
	rg_buf *b = user;
	if (n < 0 || (OPJ_UINT64)n > b->len - b->pos) {
		b->pos = b->len;
		return (OPJ_OFF_T)-1;
	}
	b->pos += (size_t)n;
	return n;
}

static OPJ_BOOL rg_seek(OPJ_OFF_T n, void *user) {
	rg_buf *b = user;
	if (n < 0 || (OPJ_UINT64)n > b->len) {
		return OPJ_FALSE;
	}
	b->pos = (size_t)n;
	return OPJ_TRUE;
}

static void rg_msg(const char *msg, void *user) {
	rg_log *l = user;
	size_t room = sizeof l->text - 1 - l->n;
	size_t k = strlen(msg);
	if (k > room) {
		k = room;
	}
	memcpy(l->text + l->n, msg, k);
	l->n += k;
	l->text[l->n] = 0;
}

static void rg_quiet(const char *msg, void *user) {
	(void)msg;
	(void)user;
}

enum { RG_OK, RG_SETUP, RG_HEADER, RG_MISMATCH, RG_DECODE };

// rg_j2k_decode decodes data (a JP2 file when jp2, else a codestream).
// The header is checked against the expected size before any sample
// memory is allocated. On RG_OK *out holds the image (the caller destroys
// it) and *mct the codestream's multiple component transform flag.
static int rg_j2k_decode(const unsigned char *data, size_t len, int jp2,
		OPJ_UINT32 want_w, OPJ_UINT32 want_h, OPJ_UINT32 want_c,
		rg_log *log, opj_image_t **out, int *mct) {
	rg_buf buf = {data, len, 0};
	*out = NULL;
	opj_stream_t *s = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
	if (s == NULL) {
		return RG_SETUP;
	}
	opj_stream_set_user_data(s, &buf, NULL);
	opj_stream_set_user_data_length(s, len);
	opj_stream_set_read_function(s, rg_read);
	opj_stream_set_skip_function(s, rg_skip);
	opj_stream_set_seek_function(s, rg_seek);
	opj_codec_t *c = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
	if (c == NULL) {
		opj_stream_destroy(s);
		return RG_SETUP;
	}
	opj_set_error_handler(c, rg_msg, log);
	opj_set_warning_handler(c, rg_msg, log);
	opj_set_info_handler(c, rg_quiet, NULL);
	opj_dparameters_t params;
	opj_set_default_decoder_parameters(&params);
	opj_image_t *img = NULL;
	int rc = RG_OK;
	if (!opj_setup_decoder(c, &params)) {
		rc = RG_SETUP;
	} else if (!opj_read_header(s, c, &img)) {
		rc = RG_HEADER;
	} else if (img->x1 - img->x0 != want_w || img->y1 - img->y0 != want_h || img->numcomps != want_c) {
		rc = RG_MISMATCH;
	} else if (!opj_decode(c, s, img) || !opj_end_decompress(c, s)) {
		rc = RG_DECODE;
	}
	if (rc == RG_OK) {
		opj_codestream_info_v2_t *info = opj_get_cstr_info(c);
		*mct = info != NULL && info->m_default_tile_info.mct != 0;
		opj_destroy_cstr_info(&info);
		*out = img;
	} else if (img != NULL) {
		opj_image_destroy(img);
	}
	opj_destroy_codec(c);
	opj_stream_destroy(s);
	return rc;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"strings"
	"unsafe"
)

var (
	// j2kCodestreamStart is SOC followed by SIZ (ITU-T T.800 A.4.1, A.5.1).
	j2kCodestreamStart = []byte{0xFF, 0x4F, 0xFF, 0x51}
	// jp2Signature is the JPEG 2000 signature box (T.800 I.5.1).
	jp2Signature = []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}
)

// decodeJ2K decodes JPEG 2000 (PS3.5 8.2.4) and HTJ2K (8.2.7) with
// OpenJPEG, from a J2K codestream or, though PS3.5 forbids it, a JP2 file
// (pydicom's GDCMJ2K_TextGBR.dcm is one).
//
// Signedness: the codestream's SIZ Ssiz records whether samples are
// signed, and its samples are what they are; where Pixel Representation
// disagrees (pydicom's J2K_pixelrep_mismatch.dcm: unsigned codestream,
// Pixel Representation 1) the codestream wins and Frame.PixelRepresentation
// says so. Signed samples come out sign-extended to BitsAllocated.
//
// Colour: when the codestream used the multiple component transform (RCT
// or ICT, declared YBR_RCT or YBR_ICT) OpenJPEG inverts it, so the frame is
// RGB.
func decodeJ2K(data []byte, p Params) (Frame, error) {
	var jp2 C.int
	switch {
	case bytes.HasPrefix(data, j2kCodestreamStart):
	case bytes.HasPrefix(data, jp2Signature):
		jp2 = 1
	default:
		return Frame{}, fmt.Errorf("%w: j2k: neither a codestream (FF4F FF51) nor a JP2 file", ErrCorrupt)
	}
	src := C.CBytes(data)
	defer C.free(src)
	var log C.rg_log
	var img *C.opj_image_t
	var mct C.int
	rc := C.rg_j2k_decode((*C.uchar)(src), C.size_t(len(data)), jp2,
		C.OPJ_UINT32(p.Cols), C.OPJ_UINT32(p.Rows), C.OPJ_UINT32(p.SamplesPerPixel),
		&log, &img, &mct)
	msg := strings.TrimSpace(C.GoString(&log.text[0]))
	switch rc {
	case C.RG_OK:
	case C.RG_MISMATCH:
		return Frame{}, fmt.Errorf("%w: j2k: codestream size or component count differs from %d×%d×%d", ErrCorrupt, p.Cols, p.Rows, p.SamplesPerPixel)
	case C.RG_SETUP:
		return Frame{}, fmt.Errorf("%w: j2k: OpenJPEG setup failed: %s", ErrUnsupported, msg)
	default:
		return Frame{}, fmt.Errorf("%w: j2k: %s", ErrCorrupt, msg)
	}
	defer C.opj_image_destroy(img)
	comps := unsafe.Slice(img.comps, int(img.numcomps))
	f := newFrame(p)
	signed := comps[0].sgnd != 0
	for i, c := range comps {
		switch {
		case int(c.w) != p.Cols || int(c.h) != p.Rows || c.dx != 1 || c.dy != 1 || c.data == nil:
			return Frame{}, fmt.Errorf("%w: j2k: component %d is %d×%d subsampled %d×%d", ErrUnsupported, i, c.w, c.h, c.dx, c.dy)
		case int(c.prec) > p.BitsAllocated || c.prec == 0:
			return Frame{}, fmt.Errorf("%w: j2k: component %d has %d bits, bits allocated %d", ErrCorrupt, i, c.prec, p.BitsAllocated)
		case (c.sgnd != 0) != signed:
			return Frame{}, fmt.Errorf("%w: j2k: components differ in signedness", ErrUnsupported)
		}
	}
	if signed {
		f.PixelRepresentation = 1
	} else {
		f.PixelRepresentation = 0
	}
	if mct != 0 && len(comps) == 3 {
		f.PhotometricInterpretation = "RGB"
	}
	n, nc := p.Rows*p.Cols, len(comps)
	for ci, c := range comps {
		samples := unsafe.Slice((*int32)(unsafe.Pointer(c.data)), n)
		for i, v := range samples {
			putSample(f.Pixels, i*nc+ci, uint32(v), p.BitsAllocated)
		}
	}
	return f, nil
}
