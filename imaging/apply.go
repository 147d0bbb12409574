package imaging

import (
	"fmt"
	"math"
)

// Resize modes of Recipe.Resize.
const (
	ResizeStretch   = "stretch"
	ResizeLetterbox = "letterbox"
)

// Validate checks a recipe as a manifest declares it.
func (r Recipe) Validate() error {
	h, w := r.Size[0], r.Size[1]
	if h < 1 || w < 1 || h > MaxOutputSize || w > MaxOutputSize {
		return fmt.Errorf("%w: size %d×%d (1..%d)", ErrRecipe, h, w, MaxOutputSize)
	}
	if r.Resize != ResizeStretch && r.Resize != ResizeLetterbox {
		return fmt.Errorf("%w: resize %q (want %q or %q)", ErrRecipe, r.Resize, ResizeStretch, ResizeLetterbox)
	}
	if len(r.Channels) == 0 {
		return fmt.Errorf("%w: no channels", ErrRecipe)
	}
	for i, c := range r.Channels {
		// PS3.3 C.11.2.1.2: Window Width >= 1.
		if c.Window != nil && !(c.Window.Width >= 1 && finite(c.Window.Center) && finite(c.Window.Width)) {
			return fmt.Errorf("%w: channel %d window center %g width %g", ErrRecipe, i, c.Window.Center, c.Window.Width)
		}
	}
	if n := r.Normalize; n != nil {
		if len(n.Mean) != len(r.Channels) || len(n.Std) != len(r.Channels) {
			return fmt.Errorf("%w: normalize has %d means, %d stds for %d channels",
				ErrRecipe, len(n.Mean), len(n.Std), len(r.Channels))
		}
		for i := range n.Std {
			if n.Std[i] == 0 || !finite(n.Std[i]) || !finite(n.Mean[i]) {
				return fmt.Errorf("%w: normalize channel %d mean %g std %g", ErrRecipe, i, n.Mean[i], n.Std[i])
			}
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Len is the number of float32 values Apply writes: C×H×W.
func (r Recipe) Len() int { return len(r.Channels) * r.Size[0] * r.Size[1] }

// Apply writes frame of im into dst as C×H×W (NCHW without N). Per
// channel: the VOI window maps modality values to [0,1]; MONOCHROME1 is
// inverted (v → 1-v) so that bright means dense for every model; the
// windowed image is resized to Size; Normalize, if set, is applied last,
// to letterbox padding too (padding is the windowed value 0).
//
// Windowing runs once per source pixel, row by row into a reused buffer,
// and the resize is separable (rows, then columns), so the cost is about
// one pass over the source plus the filter taps.
func (r Recipe) Apply(im *Image, frame int, dst []float32) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if len(dst) != r.Len() {
		return fmt.Errorf("%w: dst has %d values, recipe needs %d", ErrRecipe, len(dst), r.Len())
	}
	src, err := im.frame(frame)
	if err != nil {
		return err
	}
	sh, sw := im.Rows, im.Cols
	if len(src) != sh*sw || sh < 1 || sw < 1 {
		return fmt.Errorf("%w: frame %d has %d values for %d×%d", ErrCorrupt, frame, len(src), sh, sw)
	}
	oh, ow := r.Size[0], r.Size[1]
	// Content rectangle inside the output: all of it for stretch; for
	// letterbox the largest centred box with the source aspect ratio.
	ch, cw, oy, ox := oh, ow, 0, 0
	if r.Resize == ResizeLetterbox {
		s := math.Min(float64(oh)/float64(sh), float64(ow)/float64(sw))
		ch = max(1, min(oh, int(math.Round(float64(sh)*s))))
		cw = max(1, min(ow, int(math.Round(float64(sw)*s))))
		oy, ox = (oh-ch)/2, (ow-cw)/2
	}
	xw := newAxis(sw, cw)
	yw := newAxis(sh, ch)
	// The row buffer has xw.taps zeros of slack so every tap window of
	// resample is in range (their weights are 0).
	row := make([]float32, sw+xw.taps)
	tmp := make([]float32, sh*cw) // rows resampled horizontally
	invert := im.PhotometricInterpretation == "MONOCHROME1"
	var lo, hi float32
	if needsRange(r, im) {
		lo, hi = minMax(src)
	}
	for c, chn := range r.Channels {
		win := chn.Window
		if win == nil {
			win = im.Window
		}
		if win == nil {
			// The frame's range as a window: c-0.5 = (lo+hi)/2 and
			// w-1 = hi-lo make C.11.2.1.2.1 the map lo→0, hi→1.
			win = &Window{Center: (float64(lo)+float64(hi))/2 + 0.5, Width: float64(hi) - float64(lo) + 1}
		}
		voi := newVOI(*win, invert)
		for y := range sh {
			voi.apply(src[y*sw:(y+1)*sw], row)
			xw.resample(row, tmp[y*cw:(y+1)*cw])
		}
		plane := dst[c*oh*ow : (c+1)*oh*ow]
		clear(plane)
		yw.resampleRows(tmp, cw, plane[oy*ow+ox:], ow)
		if n := r.Normalize; n != nil {
			mean, inv := float32(n.Mean[c]), float32(1/n.Std[c])
			for i := range plane {
				plane[i] = (plane[i] - mean) * inv
			}
		}
	}
	return nil
}

// needsRange reports whether some channel falls back to the frame's range.
func needsRange(r Recipe, im *Image) bool {
	for _, c := range r.Channels {
		if c.Window == nil && im.Window == nil {
			return true
		}
	}
	return false
}

func minMax(v []float32) (lo, hi float32) {
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		if x < lo { // branches: the NaN-aware builtin min/max are slower here
			lo = x
		} else if x > hi {
			hi = x
		}
	}
	return lo, hi
}

// voi is the linear VOI LUT function of PS3.3 C.11.2.1.2.1 with output
// range [0,1]: x <= c-0.5-(w-1)/2 → 0; x > c-0.5+(w-1)/2 → 1; else
// ((x-(c-0.5))/(w-1)+0.5). The ramp reaches 0 and 1 exactly at those
// ends, so for w > 1 it is the line a·x+b clamped to [0,1]; inversion
// (1-y) is folded into a and b. For w = 1 it is a step at c-0.5.
type voi struct {
	a, b   float32
	step   bool
	c      float32 // c-0.5, for the step
	invert bool
}

func newVOI(w Window, invert bool) voi {
	c := w.Center - 0.5
	if w.Width <= 1 {
		return voi{step: true, c: float32(c), invert: invert}
	}
	a := 1 / (w.Width - 1)
	b := 0.5 - c*a
	if invert {
		a, b = -a, 1-b
	}
	return voi{a: float32(a), b: float32(b)}
}

func (v voi) apply(src, dst []float32) {
	dst = dst[:len(src)]
	if v.step {
		lo, hi := float32(0), float32(1)
		if v.invert {
			lo, hi = 1, 0
		}
		for i, x := range src {
			dst[i] = lo
			if x > v.c {
				dst[i] = hi
			}
		}
		return
	}
	for i, x := range src {
		y := x*v.a + v.b
		if y < 0 {
			y = 0
		} else if y > 1 {
			y = 1
		}
		dst[i] = y
	}
}

// axis holds the weights that resample n source samples to m: output i
// reads taps source samples from start[i], weighted by w[i*taps:].
//
// The filter is a triangle whose support scales with the reduction
// factor (the "antialiased bilinear" of PIL and torchvision with
// antialias=True): for upsampling it is plain bilinear interpolation, for
// a 10× reduction each output averages the ~20 source samples under it,
// so fine structure aliases into nothing.
type axis struct {
	taps  int
	start []int
	w     []float32
}

func newAxis(n, m int) axis {
	scale := float64(n) / float64(m)
	support := max(scale, 1) // triangle radius in source samples
	taps := int(math.Ceil(support))*2 + 1
	a := axis{taps: taps, start: make([]int, m), w: make([]float32, m*taps)}
	for i := range m {
		center := (float64(i) + 0.5) * scale // in source coordinates, pixel centres at k+0.5
		// Taps beyond the image edge are dropped and the rest renormalised.
		lo := max(0, int(math.Floor(center-support)))
		hi := min(n, int(math.Ceil(center+support)), lo+taps)
		a.start[i] = lo
		ws := a.w[i*taps : (i+1)*taps]
		var sum float64
		for k := lo; k < hi; k++ {
			t := 1 - math.Abs(float64(k)+0.5-center)/support
			if t > 0 {
				ws[k-lo] = float32(t)
				sum += t
			}
		}
		for k := range ws {
			ws[k] = float32(float64(ws[k]) / sum)
		}
	}
	return a
}

// resample writes len(a.start) outputs from src to dst; src must extend
// a.taps past the last source sample.
func (a axis) resample(src, dst []float32) {
	for i, s := range a.start {
		ws := a.w[i*a.taps : (i+1)*a.taps]
		seg := src[s : s+len(ws)]
		var acc float32
		for k, w := range ws {
			acc += w * seg[k]
		}
		dst[i] = acc
	}
}

// resampleRows resamples along the other axis, a whole row at a time
// (cache-friendly): output row i of dst (stride dstStride, width values)
// is the weighted sum of the rows of src (stride width) under its taps.
func (a axis) resampleRows(src []float32, width int, dst []float32, dstStride int) {
	n := len(src) / width
	for i, s := range a.start {
		drow := dst[i*dstStride : i*dstStride+width]
		for k, wk := range a.w[i*a.taps : (i+1)*a.taps] {
			if wk == 0 || s+k >= n {
				continue
			}
			srow := src[(s+k)*width : (s+k+1)*width]
			for x, v := range srow {
				drow[x] += wk * v
			}
		}
	}
}
