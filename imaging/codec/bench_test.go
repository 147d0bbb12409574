package codec

import (
	"path/filepath"
	"testing"
)

// encodedCT compresses the 512×512 CT slice with a dcmtk encoder.
func encodedCT(b *testing.B, tool string, args ...string) dicomFile {
	b.Helper()
	dst := filepath.Join(b.TempDir(), "enc.dcm")
	runTool(b, tool, append(args, ctSlice512(b), dst)...)
	f, err := readDICOM(b, dst)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func pydicomFrame(b *testing.B, name string) dicomFile {
	b.Helper()
	f, err := readDICOM(b, filepath.Join(pydicomDir(b), name))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func benchDecode(b *testing.B, f dicomFile) {
	b.Helper()
	b.SetBytes(int64(f.p.Rows * f.p.Cols * f.p.SamplesPerPixel * f.p.BitsAllocated / 8))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(f.ts, f.frames[0], f.p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRLE(b *testing.B) { benchDecode(b, encodedCT(b, "dcmcrle")) }

func BenchmarkDecodeJPEGLossless(b *testing.B) { benchDecode(b, encodedCT(b, "dcmcjpeg", "+e1")) }

func BenchmarkDecodeJPEGBaseline(b *testing.B) {
	benchDecode(b, encodedCT(b, "dcmcjpeg", "+eb", "+Wm"))
}

func BenchmarkDecodeJPEGExtended(b *testing.B) {
	benchDecode(b, encodedCT(b, "dcmcjpeg", "+ee", "+Wm"))
}

func BenchmarkDecodeJPEGLS(b *testing.B) { benchDecode(b, encodedCT(b, "dcmcjpls", "+el")) }

// J2K_pixelrep_mismatch.dcm is a 512×512 lossless CT, 693_J2KI.dcm a
// 512×512 lossy one.
func BenchmarkDecodeJ2KLossless(b *testing.B) {
	benchDecode(b, pydicomFrame(b, "J2K_pixelrep_mismatch.dcm"))
}

func BenchmarkDecodeJ2K(b *testing.B) { benchDecode(b, pydicomFrame(b, "693_J2KI.dcm")) }
