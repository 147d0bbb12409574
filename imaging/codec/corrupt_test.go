package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
)

// encodeRLE writes PS3.5 Annex G RLE with literal runs only, one segment
// per byte plane, most significant byte first.
func encodeRLE(pix []byte, p Params) []byte {
	bps := p.BitsAllocated / 8
	nseg := p.SamplesPerPixel * bps
	n := p.Rows * p.Cols
	out := make([]byte, rleHeaderLen)
	binary.LittleEndian.PutUint32(out, uint32(nseg))
	for s := 0; s < nseg; s++ {
		binary.LittleEndian.PutUint32(out[4+4*s:], uint32(len(out)))
		off := (s/bps)*bps + bps - 1 - s%bps
		for i := 0; i < n; i += 128 {
			k := min(128, n-i)
			out = append(out, byte(k-1))
			for j := i; j < i+k; j++ {
				out = append(out, pix[j*nseg+off])
			}
		}
		if len(out)%2 == 1 {
			out = append(out, 0) // pad to even length (G.3.2)
		}
	}
	return out
}

func TestRLERoundTrip(t *testing.T) {
	p := Params{Rows: 7, Cols: 33, SamplesPerPixel: 3, BitsAllocated: 16, BitsStored: 16, PhotometricInterpretation: "RGB"}
	pix := make([]byte, 7*33*3*2)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	got, err := Decode(tsRLELossless, encodeRLE(pix, p), p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Pixels, pix) {
		t.Error("RLE round trip differs")
	}
}

// corruptCase is one hand-built hostile input.
type corruptCase struct {
	name string
	ts   string
	data []byte
	p    Params
	want error
}

func patched(b []byte, off int, v ...byte) []byte {
	out := bytes.Clone(b)
	copy(out[off:], v)
	return out
}

// TestCorruptInputs feeds truncated, mislabelled and garbage streams to
// every decoder: each must return ErrCorrupt (or ErrUnsupported where
// noted) and never panic.
func TestCorruptInputs(t *testing.T) {
	gray16 := Params{Rows: 17, Cols: 23, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 12, PhotometricInterpretation: "MONOCHROME2"}
	jpg := encodeLosslessJPEG(testImage(23, 17, 12), 23, 17, 12, 1, 23)
	rlePix := make([]byte, 17*23*2)
	rle := encodeRLE(rlePix, gray16)
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i*131 + i>>3)
	}
	sof := bytes.Index(jpg, []byte{0xFF, mSOF3})
	sos := bytes.Index(jpg, []byte{0xFF, mSOS})
	huge := gray16
	huge.Rows, huge.Cols = 65535, 65535
	// Big enough to allocate hundreds of MiB, under maxFrameSamples: the
	// decoders must refuse from the stream length before allocating.
	big := gray16
	big.Rows, big.Cols = 16000, 16000
	cases := []corruptCase{
		{"empty", tsJPEGLossless, nil, gray16, ErrCorrupt},
		{"bad params", tsRLELossless, rle, Params{Rows: 0, Cols: 1, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8}, ErrCorrupt},
		{"frame over limit", tsRLELossless, rle, huge, ErrUnsupported},
		{"unknown syntax", "1.2.840.10008.1.2.4.100", jpg, gray16, ErrUnsupported},

		{"rle frame larger than stream", tsRLELossless, rle, big, ErrCorrupt},
		{"jpeg frame larger than stream", tsJPEGLossless, patched(jpg, sof+5, 0x3E, 0x80, 0x3E, 0x80), big, ErrCorrupt},
		{"rle garbage", tsRLELossless, garbage, gray16, ErrCorrupt},
		{"rle short header", tsRLELossless, rle[:40], gray16, ErrCorrupt},
		{"rle segment count", tsRLELossless, patched(rle, 0, 3), gray16, ErrCorrupt},
		{"rle offset past end", tsRLELossless, patched(rle, 8, 0xFF, 0xFF, 0, 0), gray16, ErrCorrupt},
		{"rle offset in header", tsRLELossless, patched(rle, 4, 8), gray16, ErrCorrupt},
		{"rle truncated", tsRLELossless, rle[:len(rle)-100], gray16, ErrCorrupt},
		{"rle run overflows", tsRLELossless, append(patched(rle, 8, byte(len(rle)), byte(len(rle)>>8)), 0x81, 0, 0x81, 0, 0x81, 0, 0x81, 0, 0x81, 0), gray16, ErrCorrupt},

		{"jpeg garbage", tsJPEGLossless, garbage, gray16, ErrCorrupt},
		{"jpeg SOI only", tsJPEGLossless, jpg[:2], gray16, ErrCorrupt},
		{"jpeg truncated header", tsJPEGLossless, jpg[:sos+4], gray16, ErrCorrupt},
		{"jpeg truncated scan", tsJPEGLossless, jpg[:len(jpg)*2/3], gray16, ErrCorrupt},
		{"jpeg huge dimensions", tsJPEGLossless, patched(jpg, sof+5, 0xFF, 0xFF, 0xFF, 0xFF), gray16, ErrCorrupt},
		{"jpeg wrong components", tsJPEGLossless, patched(jpg, sof+9, 3), gray16, ErrCorrupt},
		{"jpeg precision too wide", tsJPEGLossless, patched(jpg, sof+4, 17), gray16, ErrCorrupt},
		{"jpeg missing restart marker", tsJPEGLossless, bytes.Replace(jpg, []byte{0xFF, mRST0 + 1}, []byte{0xFF, 0x00}, 1), gray16, ErrCorrupt},
		{"jpeg progressive", tsJPEGBaseline, patched(jpg, sof+1, mSOF2), gray16, ErrUnsupported},
		{"jpeg arithmetic", tsJPEGBaseline, patched(jpg, sof+1, 0xCB), gray16, ErrUnsupported},
		{"jpeg huffman oversubscribed", tsJPEGLossless, bytes.Replace(jpg, []byte{0, 0, 0, 0, 17}, []byte{0, 0, 0, 17, 0}, 1), gray16, ErrCorrupt},
		{"jpeg no scan", tsJPEGLossless, append(bytes.Clone(jpg[:sos]), 0xFF, mEOI), gray16, ErrCorrupt},

		{"jpeg-ls garbage", tsJPEGLSLossless, garbage, gray16, ErrCorrupt},
		{"j2k garbage", tsJ2KLossless, garbage, gray16, ErrCorrupt},
		{"j2k SOC SIZ only", tsJ2KLossless, []byte{0xFF, 0x4F, 0xFF, 0x51, 0, 0x29}, gray16, ErrCorrupt},
		{"jp2 signature only", tsJ2KLossless, jp2Signature, gray16, ErrCorrupt},
	}
	// Real JPEG-LS and JPEG 2000 frames, cut and mislabelled.
	if dir := pydicomTestFiles; dirExists(dir) {
		mr := Params{Rows: 64, Cols: 64, SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16, PixelRepresentation: 1, PhotometricInterpretation: "MONOCHROME2"}
		for _, f := range []struct{ name, ts string }{
			{"MR_small_jpeg_ls_lossless.dcm", tsJPEGLSLossless},
			{"MR_small_jp2klossless.dcm", tsJ2KLossless},
		} {
			df, err := readDICOM(t, filepath.Join(dir, f.name))
			if err != nil {
				t.Fatal(err)
			}
			fr := df.frames[0]
			small := mr
			small.Rows = 32
			cases = append(cases,
				corruptCase{f.name + " truncated", f.ts, fr[:len(fr)/2], mr, ErrCorrupt},
				corruptCase{f.name + " header only", f.ts, fr[:40], mr, ErrCorrupt},
				corruptCase{f.name + " size mismatch", f.ts, fr, small, ErrCorrupt},
				corruptCase{f.name + " 8-bit declared", f.ts, fr, Params{Rows: 64, Cols: 64, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8}, ErrCorrupt},
			)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.ts, c.data, c.p)
			if !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
			t.Logf("%v", err)
		})
	}
}
