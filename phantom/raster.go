package phantom

import (
	"math"
	"math/rand/v2"
)

// angN is the resolution of angular tables: 1024 steps of a full turn.
const angN = 1024

// angTable is a smooth periodic function of an angle, tabulated: a sum of
// harmonics 1..n with random phases and amplitudes falling as 1/k, scaled
// so that its largest magnitude is amp.
type angTable []float64

func newAngTable(r *rand.Rand, n int, amp float64) angTable {
	t := make(angTable, angN)
	for k := 1; k <= n; k++ {
		a, ph := r.Float64()/float64(k), 2*math.Pi*r.Float64()
		for i := range t {
			t[i] += a * math.Sin(float64(k)*2*math.Pi*float64(i)/angN+ph)
		}
	}
	var peak float64
	for _, v := range t {
		peak = max(peak, math.Abs(v))
	}
	if peak > 0 {
		for i := range t {
			t[i] *= amp / peak
		}
	}
	return t
}

// at is the table at angle theta (radians, any range), nearest step.
func (t angTable) at(theta float64) float64 {
	i := int(math.Floor(theta*(angN/(2*math.Pi)) + 0.5))
	return t[((i%angN)+angN)%angN]
}

// smoothstep is 0 below e0, 1 above e1 and a cubic in between.
func smoothstep(e0, e1, x float64) float64 {
	t := (x - e0) / (e1 - e0)
	if t <= 0 {
		return 0
	}
	if t >= 1 {
		return 1
	}
	return t * t * (3 - 2*t)
}

func lerp(a, b, t float64) float64 { return a + (b-a)*t }

// between draws uniformly from [lo, hi).
func between(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// valueNoise is smooth random texture: a coarse grid of uniform values in
// [-1, 1] interpolated bilinearly over an image of w×h pixels.
type valueNoise struct {
	gw, gh int
	cell   float64 // pixels per grid cell
	v      []float32
}

func newValueNoise(r *rand.Rand, w, h int, cell float64) *valueNoise {
	gw, gh := int(float64(w)/cell)+2, int(float64(h)/cell)+2
	n := &valueNoise{gw: gw, gh: gh, cell: cell, v: make([]float32, gw*gh)}
	for i := range n.v {
		n.v[i] = float32(2*r.Float64() - 1)
	}
	return n
}

func (n *valueNoise) at(x, y float64) float64 {
	fx, fy := x/n.cell, y/n.cell
	ix, iy := int(fx), int(fy)
	tx, ty := fx-float64(ix), fy-float64(iy)
	i := iy*n.gw + ix
	top := lerp(float64(n.v[i]), float64(n.v[i+1]), tx)
	bot := lerp(float64(n.v[i+n.gw]), float64(n.v[i+n.gw+1]), tx)
	return lerp(top, bot, ty)
}
