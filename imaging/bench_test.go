package imaging

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// ctRecipe is a stroke-model style recipe: brain, subdural and bone
// windows of a head CT slice, 3×224².
var ctRecipe = Recipe{Size: [2]int{224, 224}, Resize: ResizeStretch, Channels: []Channel{
	{Window: &Window{Center: 40, Width: 80}},
	{Window: &Window{Center: 80, Width: 200}},
	{Window: &Window{Center: 600, Width: 2800}},
}, Normalize: &Normalize{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}}

// crRecipe is a chest X-ray triage recipe: 1×224² letterbox, own range.
var crRecipe = Recipe{Size: [2]int{224, 224}, Resize: ResizeLetterbox, Channels: []Channel{{}}}

func benchApply(b *testing.B, data []byte, r Recipe) {
	im, err := Load(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	out := make([]float32, r.Len())
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Apply(im, 0, out); err != nil {
			b.Fatal(err)
		}
	}
}

func benchLoad(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// ct512 is a synthetic 512² CT slice, 12 bits stored in 16, signed, with
// RescaleIntercept -1024: a disc of tissue (40 HU) with a bone rim, in air.
func ct512() []byte {
	const n = 512
	words := make([]uint16, n*n)
	for y := range n {
		for x := range n {
			d := (x-256)*(x-256) + (y-256)*(y-256)
			hu := -1000
			switch {
			case d < 200*200:
				hu = 40 + (x*7+y*13)%20 // some texture
			case d < 215*215:
				hu = 1200
			}
			words[y*n+x] = uint16(hu + 1024)
		}
	}
	return part10(tsExplicitVRLittleEndian, nil, mono16(n, n, 12, 11, 1, words,
		str(0x0028, 0x1052, "DS", "-1024"), str(0x0028, 0x1053, "DS", "1"))...)
}

func readFile(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkApplyCT512: a 512² CT slice to 3×224² (three windows).
func BenchmarkApplyCT512(b *testing.B) { benchApply(b, ct512(), ctRecipe) }

// BenchmarkApplyCR: the 2140×1760 chest radiograph to 1×224² (~10× down).
func BenchmarkApplyCR(b *testing.B) { benchApply(b, readFile(b, chestCR(b)), crRecipe) }

func BenchmarkLoadCT512(b *testing.B) { benchLoad(b, ct512()) }
func BenchmarkLoadCR(b *testing.B)    { benchLoad(b, readFile(b, chestCR(b))) }
