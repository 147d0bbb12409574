package imaging

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Tolerances of SortSlices.
const (
	// orientationTolerance: direction cosines (unit vectors) of slices of
	// one stack may differ by rounding in the DS text (PS3.5 6.2: 16 chars).
	orientationTolerance = 1e-4
	// positionTolerance (mm): slices closer than this along the normal are
	// at the same position, and InstanceNumber decides.
	positionTolerance = 1e-4
)

// SortSlices sorts ims in place by position along the slice normal, the
// cross product of the row and column direction cosines of Image
// Orientation (Patient) (PS3.3 C.7.6.2.1.1), ascending; slices at the same
// position are ordered by InstanceNumber. It fails, leaving ims unchanged,
// when a slice has no geometry or the orientations disagree.
func SortSlices(ims []*Image) error {
	if len(ims) == 0 {
		return nil
	}
	ref := ims[0].ImageOrientationPatient
	for i, im := range ims {
		if !im.HasGeometry {
			return fmt.Errorf("%w: slice %d (%s) has no ImagePositionPatient/ImageOrientationPatient",
				ErrGeometry, i, im.SOPInstanceUID)
		}
		for k := range ref {
			if math.Abs(im.ImageOrientationPatient[k]-ref[k]) > orientationTolerance {
				return fmt.Errorf("%w: slice %d (%s) orientation %v differs from %v",
					ErrGeometry, i, im.SOPInstanceUID, im.ImageOrientationPatient, ref)
			}
		}
	}
	r, c := ref[0:3], ref[3:6]
	normal := [3]float64{r[1]*c[2] - r[2]*c[1], r[2]*c[0] - r[0]*c[2], r[0]*c[1] - r[1]*c[0]}
	dist := func(im *Image) float64 {
		p := im.ImagePositionPatient
		return p[0]*normal[0] + p[1]*normal[1] + p[2]*normal[2]
	}
	slices.SortStableFunc(ims, func(a, b *Image) int {
		da, db := dist(a), dist(b)
		if math.Abs(da-db) > positionTolerance {
			return cmp.Compare(da, db)
		}
		return cmp.Compare(a.InstanceNumber, b.InstanceNumber)
	})
	return nil
}
