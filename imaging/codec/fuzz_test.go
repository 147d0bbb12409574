package codec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzMaxSamples keeps fuzzed Params to frames of at most 2^20 samples so
// the fuzzer spends its time in the decoders, not in allocating output.
const fuzzMaxSamples = 1 << 20

// addSeeds adds the frames of every pydicom test file of the given
// transfer syntaxes, with their Params, to the fuzz corpus. Without the
// pydicom files the synthetic seeds alone are used.
func addSeeds(f *testing.F, syntaxes ...string) {
	if !dirExists(pydicomTestFiles) {
		return
	}
	ents, err := os.ReadDir(pydicomTestFiles)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		df, _ := readDICOM(f, filepath.Join(pydicomTestFiles, e.Name()))
		for _, ts := range syntaxes {
			if df.ts != ts {
				continue
			}
			for _, fr := range df.frames {
				addSeed(f, fr, df.p)
			}
		}
	}
}

func addSeed(f *testing.F, data []byte, p Params) {
	f.Add(data, uint16(p.Rows), uint16(p.Cols), uint8(p.SamplesPerPixel), uint8(p.BitsAllocated), uint8(p.BitsStored), uint8(p.PixelRepresentation))
}

// fuzzDecode decodes and checks the contract: an error wraps one of the
// sentinels, a success has exactly the frame's size.
func fuzzDecode(t *testing.T, ts string, data []byte, rows, cols uint16, spp, ba, bs, pr uint8) {
	p := Params{Rows: int(rows), Cols: int(cols), SamplesPerPixel: int(spp), BitsAllocated: int(ba), BitsStored: int(bs), PixelRepresentation: int(pr), PhotometricInterpretation: "MONOCHROME2"}
	if p.SamplesPerPixel == 3 {
		p.PhotometricInterpretation = "YBR_FULL_422"
	}
	if p.Rows*p.Cols*p.SamplesPerPixel > fuzzMaxSamples {
		return
	}
	fr, err := Decode(ts, data, p)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error wraps neither sentinel: %v", err)
		}
		return
	}
	if want := p.Rows * p.Cols * p.SamplesPerPixel * p.BitsAllocated / 8; len(fr.Pixels) != want {
		t.Fatalf("decoded %d bytes, want %d", len(fr.Pixels), want)
	}
}

func FuzzRLE(f *testing.F) {
	p := Params{Rows: 7, Cols: 33, SamplesPerPixel: 3, BitsAllocated: 16, BitsStored: 16}
	addSeed(f, encodeRLE(make([]byte, 7*33*3*2), p), p)
	addSeeds(f, tsRLELossless)
	f.Fuzz(func(t *testing.T, data []byte, rows, cols uint16, spp, ba, bs, pr uint8) {
		fuzzDecode(t, tsRLELossless, data, rows, cols, spp, ba, bs, pr)
	})
}

func FuzzJPEG(f *testing.F) {
	for _, precision := range []int{8, 12, 16} {
		ba := 16
		if precision == 8 {
			ba = 8
		}
		addSeed(f, encodeLosslessJPEG(testImage(23, 17, precision), 23, 17, precision, 7, 23),
			Params{Rows: 17, Cols: 23, SamplesPerPixel: 1, BitsAllocated: ba, BitsStored: precision})
	}
	addSeed(f, encodeDCOnlyJPEG(make([]int32, 15), 40, 24, 2),
		Params{Rows: 24, Cols: 40, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8})
	addSeeds(f, tsJPEGBaseline, tsJPEGExtended, tsJPEGLossless, tsJPEGLosslessSV1)
	f.Fuzz(func(t *testing.T, data []byte, rows, cols uint16, spp, ba, bs, pr uint8) {
		// One decoder serves all four JPEG syntaxes.
		fuzzDecode(t, tsJPEGBaseline, data, rows, cols, spp, ba, bs, pr)
	})
}

func FuzzJPEGLS(f *testing.F) {
	addSeeds(f, tsJPEGLSLossless, tsJPEGLSNearLossless)
	f.Fuzz(func(t *testing.T, data []byte, rows, cols uint16, spp, ba, bs, pr uint8) {
		fuzzDecode(t, tsJPEGLSLossless, data, rows, cols, spp, ba, bs, pr)
	})
}

func FuzzJ2K(f *testing.F) {
	addSeeds(f, tsJ2KLossless, tsJ2K)
	f.Fuzz(func(t *testing.T, data []byte, rows, cols uint16, spp, ba, bs, pr uint8) {
		fuzzDecode(t, tsJ2K, data, rows, cols, spp, ba, bs, pr)
	})
}
