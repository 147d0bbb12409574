package phantom

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestPhantomPreview writes PNG previews of each kind and finding into the
// folder RADGATE_PHANTOM_PREVIEW names, for a person to look at.
func TestPhantomPreview(t *testing.T) {
	dir := os.Getenv("RADGATE_PHANTOM_PREVIEW")
	if dir == "" {
		t.Skip("set RADGATE_PHANTOM_PREVIEW=DIR to write PNG previews")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Spec{
		{Kind: KindCXR, Finding: None, Seed: 1},
		{Kind: KindCXR, Finding: Pneumothorax, Seed: 1},
		{Kind: KindCXR, Finding: Effusion, Seed: 1},
		{Kind: KindCXR, Finding: Pneumothorax, Seed: 2},
		{Kind: KindCXR, Finding: Effusion, Seed: 2},
		{Kind: KindCTHead, Finding: None, Seed: 1},
		{Kind: KindCTHead, Finding: Hemorrhage, Seed: 1},
		{Kind: KindCTHead, Finding: Hemorrhage, Seed: 2},
		{Kind: KindCTHead, Finding: Hemorrhage, Seed: 8}, // subdural
	} {
		var img image.Image
		if s.Kind == KindCXR {
			r := renderCXR(s)
			img = windowed(r.raw, cxrSize, 2, false, 0, r.window[0], r.window[1])
		} else {
			img = montage(renderCTHead(s))
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.png", s.Kind, s.Finding, s.Seed))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		t.Log(p)
	}
}

// windowed is a size×size frame of stored words (signed: two's
// complement), shrunk by step, with the rescale intercept and the window
// applied.
func windowed(raw []byte, size, step int, signed bool, intercept, center, width float64) *image.Gray {
	n := size / step
	img := image.NewGray(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			w := binary.LittleEndian.Uint16(raw[2*(y*step*size+x*step):])
			v := float64(w)
			if signed {
				v = float64(int16(w))
			}
			g := (v + intercept - center + width/2) / width * 255
			img.SetGray(x, y, color.Gray{Y: uint8(min(max(g, 0), 255))})
		}
	}
	return img
}

// montage tiles the slices of a CT study, brain window, half size.
func montage(st ctStudy) *image.Gray {
	const tile, cols = ctSize / 2, 6
	rows := (len(st.slices) + cols - 1) / cols
	out := image.NewGray(image.Rect(0, 0, cols*tile, rows*tile))
	for i, sl := range st.slices {
		w := windowed(sl.raw, ctSize, 2, true, huRescale, 40, 80)
		ox, oy := (i%cols)*tile, (i/cols)*tile
		for y := range tile {
			copy(out.Pix[(oy+y)*out.Stride+ox:], w.Pix[y*w.Stride:y*w.Stride+tile])
		}
	}
	return out
}
