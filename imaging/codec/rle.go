package codec

import (
	"encoding/binary"
	"fmt"
)

// rleHeaderLen is the RLE header: the segment count and 15 segment
// offsets, each a little-endian uint32 (PS3.5 G.5).
const rleHeaderLen = 64

// rleMaxSegments is the most segments the header can address (PS3.5 G.5).
const rleMaxSegments = 15

// decodeRLE decodes RLE Lossless (PS3.5 Annex G). Each segment holds one
// byte plane of one sample: for every sample, the most significant byte
// first (G.2), each PackBits-coded (G.3.1) to exactly Rows×Cols bytes.
func decodeRLE(data []byte, p Params) (Frame, error) {
	bytesPerSample := p.BitsAllocated / 8
	want := p.SamplesPerPixel * bytesPerSample
	if want > rleMaxSegments {
		return Frame{}, fmt.Errorf("%w: rle: %d samples of %d bits need %d segments, more than %d", ErrUnsupported, p.SamplesPerPixel, p.BitsAllocated, want, rleMaxSegments)
	}
	if len(data) < rleHeaderLen {
		return Frame{}, fmt.Errorf("%w: rle: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(data), rleHeaderLen)
	}
	if n := binary.LittleEndian.Uint32(data); n != uint32(want) {
		return Frame{}, fmt.Errorf("%w: rle: header declares %d segments, the Image Pixel module needs %d", ErrCorrupt, n, want)
	}
	// A replicate run codes at most 128 bytes in 2 (G.3.1): a shorter
	// frame cannot hold the planes, so refuse it before allocating.
	pixels := p.Rows * p.Cols
	if minLen := rleHeaderLen + want*2*((pixels+127)/128); len(data) < minLen {
		return Frame{}, fmt.Errorf("%w: rle: %d bytes cannot code %d planes of %d bytes", ErrCorrupt, len(data), want, pixels)
	}
	f := newFrame(p)
	for s := 0; s < want; s++ {
		start := uint64(binary.LittleEndian.Uint32(data[4+4*s:]))
		end := uint64(len(data))
		if s+1 < want {
			end = uint64(binary.LittleEndian.Uint32(data[8+4*s:]))
		}
		if start < rleHeaderLen || start > end || end > uint64(len(data)) {
			return Frame{}, fmt.Errorf("%w: rle: segment %d spans bytes %d..%d of %d", ErrCorrupt, s+1, start, end, len(data))
		}
		// Segment s holds byte (s mod bytesPerSample), counted from the
		// most significant, of sample s / bytesPerSample.
		sample, msbIndex := s/bytesPerSample, s%bytesPerSample
		off := sample*bytesPerSample + (bytesPerSample - 1 - msbIndex)
		if err := unpackBits(data[start:end], f.Pixels[off:], want, pixels); err != nil {
			return Frame{}, fmt.Errorf("%w: rle: segment %d: %v", ErrCorrupt, s+1, err)
		}
	}
	return f, nil
}

// unpackBits decodes one PackBits segment (PS3.5 G.3.1) into n bytes
// written stride bytes apart in dst. Bytes after the n-th are ignored: a
// segment may carry a pad byte to even length (G.3.2).
func unpackBits(src, dst []byte, stride, n int) error {
	out, i := 0, 0
	for out < n {
		if i >= len(src) {
			return fmt.Errorf("ends after %d of %d bytes", out, n)
		}
		h := int(int8(src[i]))
		i++
		switch {
		case h >= 0: // literal run of h+1 bytes
			cnt := h + 1
			if i+cnt > len(src) {
				return fmt.Errorf("literal run of %d bytes at offset %d passes the segment end", cnt, i-1)
			}
			if out+cnt > n {
				return fmt.Errorf("literal run of %d bytes overflows the %d-byte plane", cnt, n)
			}
			for _, b := range src[i : i+cnt] {
				dst[out*stride] = b
				out++
			}
			i += cnt
		case h != -128: // replicate the next byte 1-h times
			cnt := 1 - h
			if i >= len(src) {
				return fmt.Errorf("replicate run at offset %d has no byte", i-1)
			}
			if out+cnt > n {
				return fmt.Errorf("replicate run of %d bytes overflows the %d-byte plane", cnt, n)
			}
			b := src[i]
			i++
			for ; cnt > 0; cnt-- {
				dst[out*stride] = b
				out++
			}
		}
		// h == -128 is a no-op (G.3.1).
	}
	return nil
}
