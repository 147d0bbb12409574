package imaging

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func slice(n int, pos [3]float64, iop [6]float64) *Image {
	im := newImage(1, 1, "MONOCHROME2", []float32{0})
	im.InstanceNumber, im.ImagePositionPatient, im.ImageOrientationPatient, im.HasGeometry = n, pos, iop, true
	return im
}

func TestSortSlices(t *testing.T) {
	// An oblique stack: row (1,0,0), column (0,cos,−sin) → normal (0,sin,cos).
	iop := [6]float64{1, 0, 0, 0, 0.8, -0.6}
	var want []*Image
	for i := range 20 {
		d := float64(i) * 2.5 // mm along the normal (0, 0.6, 0.8)
		// InstanceNumber runs against position, so it cannot be what sorts.
		want = append(want, slice(100-i, [3]float64{-120, 0.6*d - 50, 0.8*d + 10}, iop))
	}
	// Two slices at the same position: InstanceNumber decides.
	dup := slice(1, want[5].ImagePositionPatient, iop)
	want = append(want[:6], append([]*Image{dup}, want[6:]...)...)
	want[5], want[6] = want[6], want[5] // dup (InstanceNumber 1) before 95
	for range 5 {
		got := append([]*Image(nil), want...)
		rand.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		if err := SortSlices(got); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("position %d: InstanceNumber %d, want %d", i, got[i].InstanceNumber, want[i].InstanceNumber)
			}
		}
	}
}

func TestSortSlicesErrors(t *testing.T) {
	axial := [6]float64{1, 0, 0, 0, 1, 0}
	sagittal := [6]float64{0, 1, 0, 0, 0, -1}
	noGeom := newImage(1, 1, "MONOCHROME2", []float32{0})
	for name, ims := range map[string][]*Image{
		"orientation differs": {slice(1, [3]float64{0, 0, 0}, axial), slice(2, [3]float64{0, 0, 1}, sagittal)},
		"no geometry":         {slice(1, [3]float64{0, 0, 0}, axial), noGeom},
	} {
		t.Run(name, func(t *testing.T) {
			before := append([]*Image(nil), ims...)
			if err := SortSlices(ims); !errors.Is(err, ErrGeometry) {
				t.Fatalf("SortSlices = %v, want ErrGeometry", err)
			}
			for i := range ims {
				if ims[i] != before[i] {
					t.Fatal("slices reordered on error")
				}
			}
		})
	}
	if err := SortSlices(nil); err != nil {
		t.Errorf("empty: %v", err)
	}
}
