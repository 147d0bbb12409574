package codec

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"
)

// bitWriter writes entropy-coded bits with 0xFF byte stuffing (T.81
// F.1.2.3) for the test encoder below.
type bitWriter struct {
	out  []byte
	acc  uint32
	nacc uint
}

func (w *bitWriter) put(v uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (v>>uint(i))&1
		w.nacc++
		if w.nacc == 8 {
			w.out = append(w.out, byte(w.acc))
			if byte(w.acc) == 0xFF {
				w.out = append(w.out, 0)
			}
			w.acc, w.nacc = 0, 0
		}
	}
}

// flush pads the last byte with 1-bits (F.1.2.3).
func (w *bitWriter) flush() {
	for w.nacc != 0 {
		w.put(1, 1)
	}
}

// encodeLosslessJPEG is a minimal process-14 encoder (T.81 Annex H) for
// one component, written for tests the dcmtk encoder cannot produce:
// restart intervals, and precisions other than 8/12/16. Every difference
// category 0..16 gets a 5-bit code equal to the category.
func encodeLosslessJPEG(samples []uint16, w, h, precision, predictor, restart int) []byte {
	seg := func(out []byte, marker byte, body []byte) []byte {
		out = append(out, 0xFF, marker)
		out = binary.BigEndian.AppendUint16(out, uint16(len(body)+2))
		return append(out, body...)
	}
	out := []byte{0xFF, mSOI}
	out = seg(out, mSOF3, []byte{byte(precision), byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0})
	dht := []byte{0x00, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for c := 0; c <= 16; c++ {
		dht = append(dht, byte(c))
	}
	out = seg(out, mDHT, dht)
	if restart > 0 {
		out = seg(out, mDRI, []byte{byte(restart >> 8), byte(restart)})
	}
	out = seg(out, mSOS, []byte{1, 1, 0x00, byte(predictor), 0, 0})
	bw := &bitWriter{out: out}
	firstLine, start, rst := true, 0, 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := y*w + x
			if restart > 0 && n > 0 && n%restart == 0 {
				bw.flush()
				bw.out = append(bw.out, 0xFF, byte(mRST0+rst%8))
				rst++
				firstLine, start = true, n
			}
			at := func(x, y int) int32 { return int32(samples[y*w+x]) }
			var px int32
			switch {
			case firstLine && (x == 0 || n == start):
				px = 1 << (precision - 1)
			case firstLine:
				px = at(x-1, y)
			case x == 0:
				px = at(0, y-1)
			default:
				ra, rb, rc := at(x-1, y), at(x, y-1), at(x-1, y-1)
				px = [8]int32{0, ra, rb, rc, ra + rb - rc, ra + (rb-rc)>>1, rb + (ra-rc)>>1, (ra + rb) >> 1}[predictor]
			}
			diff := int32(int16(uint16(at(x, y) - px))) // modulo 2^16 (H.1.2.2)
			switch {
			case diff == -32768:
				bw.put(16, 5)
			case diff == 0:
				bw.put(0, 5)
			default:
				mag := diff
				if mag < 0 {
					mag = -mag
				}
				cat := uint(bits.Len32(uint32(mag)))
				v := diff
				if v < 0 {
					v += 1<<cat - 1
				}
				bw.put(uint32(cat), 5)
				bw.put(uint32(v), cat)
			}
		}
		firstLine = false
	}
	bw.flush()
	return append(bw.out, 0xFF, mEOI)
}

// testImage is a deterministic image of the given precision with smooth
// areas, edges and noise, so every predictor and category is exercised.
func testImage(w, h, precision int) []uint16 {
	out := make([]uint16, w*h)
	seed := uint32(precision)
	for i := range out {
		seed = seed*1664525 + 1013904223
		x, y := i%w, i/w
		v := uint32(x*x+3*y) + (seed>>24)&7
		if (x/5+y/7)%3 == 0 {
			v = seed >> 8
		}
		out[i] = uint16(v & (1<<precision - 1))
	}
	return out
}

// TestLosslessRestartAndPrecision round-trips every predictor at several
// precisions, with and without restart intervals (T.81 H.1.2.1: each
// interval restarts prediction as at the top of the scan).
func TestLosslessRestartAndPrecision(t *testing.T) {
	const w, h = 23, 17
	for _, precision := range []int{2, 8, 12, 15, 16} {
		img := testImage(w, h, precision)
		for predictor := 1; predictor <= 7; predictor++ {
			for _, restart := range []int{0, w, 3 * w} {
				data := encodeLosslessJPEG(img, w, h, precision, predictor, restart)
				ba := 8
				if precision > 8 {
					ba = 16
				}
				p := Params{Rows: h, Cols: w, SamplesPerPixel: 1, BitsAllocated: ba, BitsStored: precision, PhotometricInterpretation: "MONOCHROME2"}
				got, err := Decode(tsJPEGLossless, data, p)
				if err != nil {
					t.Fatalf("P=%d SV=%d Ri=%d: %v", precision, predictor, restart, err)
				}
				want := make([]byte, len(got.Pixels))
				for i, v := range img {
					putSample(want, i, uint32(v), ba)
				}
				if !bytes.Equal(got.Pixels, want) {
					t.Errorf("P=%d SV=%d Ri=%d: max abs difference %d", precision, predictor, restart, maxAbsDiff(got.Pixels, want, ba))
				}
			}
		}
	}
}

// encodeDCOnlyJPEG writes a baseline 8-bit grayscale stream whose blocks
// carry only a DC coefficient (quantiser 1), with an optional restart
// interval: enough to test restart handling in the DCT path (T.81 F.2.1.3.1
// resets the DC prediction) without a forward DCT. Each block then decodes
// to the constant dc/8 + 128.
func encodeDCOnlyJPEG(dc []int32, w, h, restart int) []byte {
	seg := func(out []byte, marker byte, body []byte) []byte {
		out = append(out, 0xFF, marker)
		out = binary.BigEndian.AppendUint16(out, uint16(len(body)+2))
		return append(out, body...)
	}
	out := []byte{0xFF, mSOI}
	dqt := make([]byte, 65)
	for i := 1; i < 65; i++ {
		dqt[i] = 1
	}
	out = seg(out, mDQT, dqt)
	out = seg(out, mSOF0, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0})
	// DC: categories 0..11 as 5-bit codes; AC: EOB as the 1-bit code 0.
	dht := []byte{0x00, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	dht = append(dht, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00)
	out = seg(out, mDHT, dht)
	if restart > 0 {
		out = seg(out, mDRI, []byte{byte(restart >> 8), byte(restart)})
	}
	out = seg(out, mSOS, []byte{1, 1, 0x00, 0, 63, 0})
	bw := &bitWriter{out: out}
	pred := int32(0)
	for n, v := range dc {
		if restart > 0 && n > 0 && n%restart == 0 {
			bw.flush()
			bw.out = append(bw.out, 0xFF, byte(mRST0+(n/restart-1)%8))
			pred = 0
		}
		diff := v - pred
		pred = v
		mag := diff
		if mag < 0 {
			mag = -mag
		}
		cat := uint(bits.Len32(uint32(mag)))
		if diff < 0 {
			diff += 1<<cat - 1
		}
		bw.put(uint32(cat), 5)
		bw.put(uint32(diff), cat)
		bw.put(0, 1) // EOB
	}
	bw.flush()
	return append(bw.out, 0xFF, mEOI)
}

func TestDCTRestartIntervals(t *testing.T) {
	const w, h = 40, 24 // 5×3 blocks
	dc := make([]int32, (w/8)*(h/8))
	for i := range dc {
		dc[i] = int32((i*37)%200-100) * 8
	}
	p := Params{Rows: h, Cols: w, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, PhotometricInterpretation: "MONOCHROME2"}
	want := make([]byte, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			want[y*w+x] = byte(dc[(y/8)*(w/8)+x/8]/8 + 128)
		}
	}
	for _, restart := range []int{0, 1, 2, 5, 7} {
		got, err := Decode(tsJPEGBaseline, encodeDCOnlyJPEG(dc, w, h, restart), p)
		if err != nil {
			t.Fatalf("Ri=%d: %v", restart, err)
		}
		if !bytes.Equal(got.Pixels, want) {
			t.Errorf("Ri=%d: max abs difference %d", restart, maxAbsDiff(got.Pixels, want, 8))
		}
	}
}
