package imaging

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var approx = cmpopts.EquateApprox(0, 1e-5)

func apply(t *testing.T, r Recipe, im *Image) []float32 {
	t.Helper()
	out := make([]float32, r.Len())
	if err := r.Apply(im, 0, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func win(c, w float64) *Window { return &Window{Center: c, Width: w} }

// TestWindow: the linear VOI function of PS3.3 C.11.2.1.2.1 at and around
// its ends, inversion for MONOCHROME1, the instance window and the frame
// range as fallbacks. A 1×N → 1×N stretch resamples nothing.
func TestWindow(t *testing.T) {
	px := []float32{-1000, 0, 40, 79, 80, 1000}
	// c=40, w=80: ramp from c-0.5-(w-1)/2 = 0 to c-0.5+(w-1)/2 = 79.
	ramp := func(x float64) float32 { return float32((x-39.5)/79 + 0.5) }
	windowed := []float32{0, 0, ramp(40), ramp(79), 1, 1}
	inverted := make([]float32, len(windowed))
	for i, v := range windowed {
		inverted[i] = 1 - v
	}
	own := newImage(1, 6, "MONOCHROME2", px)
	own.Window = win(40, 80)
	for _, tc := range []struct {
		name string
		im   *Image
		w    *Window
		want []float32
	}{
		{"recipe window", newImage(1, 6, "MONOCHROME2", px), win(40, 80), windowed},
		{"MONOCHROME1 inverted", newImage(1, 6, "MONOCHROME1", px), win(40, 80), inverted},
		{"instance window", own, nil, windowed},
		{"recipe window wins", own, win(0, 1), []float32{0, 1, 1, 1, 1, 1}},
		{"frame range", newImage(1, 6, "MONOCHROME2", px), nil, []float32{0, 0.5, 0.52, 0.5395, 0.54, 1}},
		{"width 1 is a step at c-0.5", newImage(1, 6, "MONOCHROME2", px), win(40, 1), []float32{0, 0, 1, 1, 1, 1}},
		{"flat frame", newImage(1, 3, "MONOCHROME2", []float32{7, 7, 7}), nil, []float32{0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Recipe{Size: [2]int{1, tc.im.Cols}, Resize: ResizeStretch, Channels: []Channel{{Window: tc.w}}}
			if d := cmp.Diff(tc.want, apply(t, r, tc.im), approx); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestLetterbox: aspect kept, content centred, padding 0 (after
// windowing, so also for MONOCHROME1), then Normalize over everything.
func TestLetterbox(t *testing.T) {
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 100
		}
		return v
	}
	wide := newImage(2, 4, "MONOCHROME2", ones(8)) // 2 rows × 4 cols
	tall := newImage(4, 2, "MONOCHROME1", ones(8))
	r := Recipe{Size: [2]int{4, 4}, Resize: ResizeLetterbox, Channels: []Channel{{Window: win(50, 20)}}}
	want := []float32{
		0, 0, 0, 0,
		1, 1, 1, 1,
		1, 1, 1, 1,
		0, 0, 0, 0,
	}
	if d := cmp.Diff(want, apply(t, r, wide), approx); d != "" {
		t.Errorf("wide: %s", d)
	}
	// MONOCHROME1 with a window above the values: 0, inverted to 1; the
	// padding stays 0.
	r.Channels[0].Window = win(500, 20)
	want = []float32{
		0, 1, 1, 0,
		0, 1, 1, 0,
		0, 1, 1, 0,
		0, 1, 1, 0,
	}
	if d := cmp.Diff(want, apply(t, r, tall), approx); d != "" {
		t.Errorf("tall MONOCHROME1: %s", d)
	}
	r.Normalize = &Normalize{Mean: []float64{0.5}, Std: []float64{0.25}}
	for i := range want {
		want[i] = (want[i] - 0.5) / 0.25
	}
	if d := cmp.Diff(want, apply(t, r, tall), approx); d != "" {
		t.Errorf("normalized: %s", d)
	}
}

// TestStretch: bilinear (half-pixel centres, edges clamped) when
// upsampling; antialiased when downsampling, where plain bilinear would
// alias a 1-pixel checkerboard to 0 or 1.
func TestStretch(t *testing.T) {
	src := newImage(2, 2, "MONOCHROME2", []float32{0, 100, 200, 300})
	r := Recipe{Size: [2]int{4, 4}, Resize: ResizeStretch, Channels: []Channel{{Window: win(150.5, 301)}}}
	// Window: x/300. Columns at source positions 0.25 0.75 1.25 1.75
	// (pixel centres 0.5, 1.5): weights 0 | .75/.25 | .25/.75 | 0.
	row := func(a, b float32) []float32 { return []float32{a, a + (b-a)/4, a + 3*(b-a)/4, b} }
	var want []float32
	top, bottom := row(0, 1./3), row(2./3, 1)
	for _, f := range []float32{0, 0.25, 0.75, 1} {
		for x := range 4 {
			want = append(want, top[x]+f*(bottom[x]-top[x]))
		}
	}
	if d := cmp.Diff(want, apply(t, r, src), approx); d != "" {
		t.Errorf("upsample: %s", d)
	}

	checker := make([]float32, 40*40)
	for i := range checker {
		checker[i] = float32((i%40 + i/40) % 2)
	}
	r = Recipe{Size: [2]int{4, 4}, Resize: ResizeStretch, Channels: []Channel{{Window: win(1, 2)}}} // 0→0, 1→1
	for i, v := range apply(t, r, newImage(40, 40, "MONOCHROME2", checker)) {
		if math.Abs(float64(v)-0.5) > 0.05 {
			t.Errorf("10× downsampled checkerboard [%d] = %g, want ≈0.5", i, v)
		}
	}
}

// TestChannels: one window per channel, C×H×W layout, per-channel Normalize.
func TestChannels(t *testing.T) {
	im := newImage(1, 2, "MONOCHROME2", []float32{0, 100})
	r := Recipe{Size: [2]int{1, 2}, Resize: ResizeStretch,
		Channels:  []Channel{{Window: win(50.5, 101)}, {Window: win(0.5, 1)}},
		Normalize: &Normalize{Mean: []float64{0, 1}, Std: []float64{1, 2}}}
	want := []float32{0, 1, -0.5, 0}
	if d := cmp.Diff(want, apply(t, r, im), approx); d != "" {
		t.Error(d)
	}
	if r.Len() != 4 {
		t.Errorf("Len = %d", r.Len())
	}
}

func TestRecipeErrors(t *testing.T) {
	good := Recipe{Size: [2]int{4, 4}, Resize: ResizeStretch, Channels: []Channel{{}}}
	for _, tc := range []struct {
		name string
		edit func(*Recipe)
	}{
		{"zero size", func(r *Recipe) { r.Size = [2]int{0, 4} }},
		{"huge size", func(r *Recipe) { r.Size = [2]int{4, MaxOutputSize + 1} }},
		{"resize mode", func(r *Recipe) { r.Resize = "crop" }},
		{"no channels", func(r *Recipe) { r.Channels = nil }},
		{"width < 1", func(r *Recipe) { r.Channels[0].Window = win(0, 0.5) }},
		{"NaN center", func(r *Recipe) { r.Channels[0].Window = win(math.NaN(), 10) }},
		{"normalize count", func(r *Recipe) { r.Normalize = &Normalize{Mean: []float64{0, 0}, Std: []float64{1, 1}} }},
		{"std 0", func(r *Recipe) { r.Normalize = &Normalize{Mean: []float64{0}, Std: []float64{0}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			r.Channels = []Channel{{}}
			tc.edit(&r)
			if err := r.Validate(); !errors.Is(err, ErrRecipe) {
				t.Errorf("Validate = %v", err)
			}
		})
	}
	im := newImage(2, 2, "MONOCHROME2", []float32{1, 2, 3, 4})
	if err := good.Apply(im, 0, make([]float32, 3)); !errors.Is(err, ErrRecipe) {
		t.Errorf("short dst: %v", err)
	}
	if err := good.Apply(im, 1, make([]float32, good.Len())); !errors.Is(err, ErrFrame) {
		t.Errorf("frame 1 of 1: %v", err)
	}
}
