package phantom

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/radgate/radgate/internal/dsbuild"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Geometry of the head CT series.
const (
	uidCTImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	ctSize            = 512  // rows and columns
	ctSpacing         = 0.45 // mm per pixel: a 230 mm field of view
	// ctCoverageMM is the z extent from the skull base to the vertex; the
	// slice thickness is ctCoverageMM / slices.
	ctCoverageMM = 120.0
	ctZStart     = -40.0 // z of the lowest slice (mm)
	// ctMinBleedPixels: a slice whose share of the hemorrhage is smaller
	// (under 2.5 mm²) gets none, so that Positive never rests on a speck.
	ctMinBleedPixels = 12
	huAir            = -1000
	huRescale        = -1024 // RescaleIntercept: stored = HU + 1024
)

// Tissue labels of a CT pixel (what the renderer put there).
const (
	labAir uint8 = iota
	labSoft
	labBone
	labCSF
	labGrey
	labWhite
	labCalc
	labBleed
)

// ctHead is the seed's head: everything but the finding.
type ctHead struct {
	cx, cy     float64 // centre (mm, patient x and y)
	cosR, sinR float64 // in-plane rotation
	a, b       float64 // semi-axes at the widest level (mm)
	outer      angTable
	scalp      angTable    // scalp thickness (mm)
	skull      angTable    // skull thickness (mm)
	cortex     angTable    // grey ribbon thickness (mm)
	gyri       *valueNoise // its zero crossings are the sulci
	csf        float64     // subarachnoid CSF (mm); larger is atrophy
	vent       float64     // ventricle size factor
	grey       float64     // HU
	white      float64     // HU
	noise      float64     // σ HU
	pineal     float64     // calcification HU, 0: none
	choroid    float64     // calcification HU, 0: none
}

// ctBleed is the hemorrhage of a positive study.
type ctBleed struct {
	subdural bool
	hu       float64
	// intraparenchymal: centre and radii (head coordinates, mm), boundary
	// modulation and a rim of oedema
	u, v, z, ru, rv, rz float64
	shape               angTable
	edema               float64 // mm
	// subdural: centre angle and half span (rad), greatest thickness (mm),
	// z range (mm)
	theta, span, tmax, z0, z1 float64
}

type ctSlice struct {
	raw      []byte  // stored values, little endian
	label    []uint8 // labAir…
	positive bool
	z        float64 // ImagePositionPatient z (mm)
}

type ctStudy struct {
	thickness float64
	slices    []ctSlice
}

func newCTHead(r *rand.Rand) ctHead {
	rot := between(r, -0.09, 0.09)
	return ctHead{
		cx: between(r, -6, 6), cy: between(r, -8, 4),
		cosR: math.Cos(rot), sinR: math.Sin(rot),
		a: between(r, 68, 78), b: between(r, 86, 98),
		outer:   newAngTable(r, 5, between(r, 0.01, 0.03)),
		scalp:   newAngTable(r, 4, 1.5),
		skull:   newAngTable(r, 6, 1.8),
		cortex:  newAngTable(r, 8, 0.8),
		gyri:    newValueNoise(r, 600, 600, between(r, 7, 11)), // mm
		csf:     between(r, 0.8, 3),
		vent:    between(r, 0.75, 1.5),
		grey:    between(r, 36, 41),
		white:   between(r, 26, 31),
		noise:   between(r, 4, 6),
		pineal:  chance(r, 0.6, between(r, 120, 400)),
		choroid: chance(r, 0.5, between(r, 100, 220)),
	}
}

// chance is v with probability p, else 0.
func chance(r *rand.Rand, p, v float64) float64 {
	if r.Float64() < p {
		return v
	}
	return 0
}

func newCTBleed(r *rand.Rand, h *ctHead) *ctBleed {
	b := &ctBleed{subdural: r.Float64() < 0.45}
	if b.subdural {
		side := 0.0
		if r.IntN(2) == 1 {
			side = math.Pi
		}
		b.hu = between(r, 50, 82)
		b.theta = side + between(r, -0.7, 0.7)
		b.span = between(r, 0.5, 1.2)
		b.tmax = between(r, 3, 15)
		b.z0 = between(r, 0.25, 0.6) * ctCoverageMM
		b.z1 = min(b.z0+between(r, 0.2, 0.5)*ctCoverageMM, 0.95*ctCoverageMM)
		return b
	}
	b.hu = between(r, 55, 88)
	b.z = between(r, 0.32, 0.75) * ctCoverageMM
	phi := 2 * math.Pi * r.Float64()
	frac := between(r, 0.15, 0.6)
	sc := headScale(b.z / ctCoverageMM)
	b.u = frac * (h.a*sc - 18) * math.Cos(phi)
	b.v = frac * (h.b*sc - 18) * math.Sin(phi)
	rad := between(r, 4, 22)
	b.ru, b.rv = rad*between(r, 0.7, 1.3), rad*between(r, 0.7, 1.3)
	b.rz = max(rad*between(r, 0.6, 1.1), 3)
	b.shape = newAngTable(r, 4, between(r, 0.05, 0.25))
	b.edema = chance(r, 0.7, between(r, 1, 5))
	return b
}

// headScale is the size of the head section at level h (0 skull base, 1
// vertex) relative to its widest: an ellipsoid centred low.
func headScale(h float64) float64 {
	d := (h - 0.3) / 0.8
	return math.Sqrt(max(1-d*d, 0.05))
}

func renderCTHead(s Spec) ctStudy {
	st := s.streams()
	head := newCTHead(st.anatomy)
	var bleed *ctBleed
	if s.Finding == Hemorrhage {
		bleed = newCTBleed(st.finding, &head)
	}
	n := s.slices()
	study := ctStudy{thickness: math.Round(ctCoverageMM*100/float64(n)) / 100, slices: make([]ctSlice, n)}
	hu := make([]float64, ctSize*ctSize)
	cand := make([]int32, 0, ctSize*ctSize/4)
	for i := range study.slices {
		zl := (float64(i) + 0.5) * study.thickness // mm above the skull base
		sl := &study.slices[i]
		sl.z = ctZStart + float64(i)*study.thickness
		sl.label = make([]uint8, ctSize*ctSize)
		cand = head.render(zl, bleed, hu, sl.label, cand[:0])
		if len(cand) >= ctMinBleedPixels {
			sl.positive = true
			for _, p := range cand {
				hu[p] = bleed.hu
				sl.label[p] = labBleed
			}
		}
		sl.raw = make([]byte, 2*ctSize*ctSize)
		for p, v := range hu {
			v += head.noise * st.noise.NormFloat64()
			stored := math.Round(min(max(v, -1024), 3071)) - huRescale
			binary.LittleEndian.PutUint16(sl.raw[2*p:], uint16(int16(stored)))
		}
	}
	return study
}

// render writes the HU and labels of the slice zl mm above the skull base
// and returns cand with the pixels the bleed covers appended.
func (h *ctHead) render(zl float64, bl *ctBleed, hu []float64, label []uint8, cand []int32) []int32 {
	lvl := zl / ctCoverageMM
	sc := headScale(lvl)
	a, b := h.a*sc, h.b*sc
	half := (ctSize - 1) / 2.0
	for y := range ctSize {
		py := (float64(y)-half)*ctSpacing - h.cy
		for x := range ctSize {
			px := (float64(x)-half)*ctSpacing - h.cx
			u := h.cosR*px + h.sinR*py  // patient's left +
			v := -h.sinR*px + h.cosR*py // posterior +
			p := y*ctSize + x
			val, lab, bleeds := h.tissue(u, v, a, b, lvl, zl, bl)
			if bleeds {
				cand = append(cand, int32(p))
			}
			hu[p], label[p] = val, lab
		}
	}
	return cand
}

// tissue is the HU and label at head coordinates (u, v) mm of a section
// with semi-axes a, b at level lvl (zl mm), and whether the bleed covers
// it (the HU and label are then of the tissue beneath).
func (h *ctHead) tissue(u, v, a, b, lvl, zl float64, bl *ctBleed) (float64, uint8, bool) {
	eu, ev := u/a, v/b
	rho := math.Sqrt(eu*eu + ev*ev)
	if rho > 1.06 {
		return huAir, labAir, false
	}
	theta := math.Atan2(ev, eu)
	c, s := math.Cos(theta), math.Sin(theta)
	rmm := math.Sqrt(a*a*c*c + b*b*s*s)
	depth := (1 + h.outer.at(theta) - rho) * rmm // mm below the skin
	if depth < 0 {
		return huAir, labAir, false
	}
	scalp := 5 + h.scalp.at(theta)
	if depth < scalp {
		if depth < 1.5 || depth > scalp-1 {
			return 40, labSoft, false
		}
		return -70, labSoft, false // subcutaneous fat
	}
	// Skull: thicker frontally and occipitally, cortical tables around
	// diploë; thicker still at the skull base.
	skullT := 6.5 + h.skull.at(theta) + 1.5*s*s + 4*smoothstep(0.15, 0, lvl)
	di := depth - scalp
	if di < skullT {
		if di < 1.6 || di > skullT-1.6 {
			return 1350 + 150*s, labBone, false
		}
		return 750, labBone, false
	}
	di -= skullT // mm below the inner table
	if val, lab, ok := h.skullBase(u, v, a, b, lvl); ok {
		return val, lab, false
	}
	if bl != nil && bl.subdural && bl.coversSubdural(theta, zl, di) {
		return 8, labCSF, true
	}
	if di < h.csf {
		return 8, labCSF, false
	}
	bd := di - h.csf // mm below the brain surface
	val, lab := h.grey, labGrey
	cortex := 3 + h.cortex.at(theta)
	switch {
	case bd < 5+h.csf && math.Abs(h.gyri.at(u+300+0.3*zl, v+300-0.2*zl)) < 0.04+0.02*h.csf:
		val, lab = 8, labCSF // sulcus
	case bd > cortex:
		val, lab = lerp(h.grey, h.white, smoothstep(cortex, cortex+1.5, bd)), labWhite
	}
	if dv, dl, ok := h.deep(u, v, a, b, lvl); ok {
		val, lab = dv, dl
	}
	if bl != nil && !bl.subdural {
		q, edge := bl.parenchymal(u, v, zl)
		switch {
		case q <= 1:
			return val, lab, true
		case edge < bl.edema:
			val -= 7 * (1 - edge/bl.edema)
		}
	}
	return val, lab, false
}

// skullBase draws what the lowest slices hold in front of and beside the
// brain: orbits with globes and lenses, ethmoid and sphenoid air cells and
// the petrous bones.
func (h *ctHead) skullBase(u, v, a, b, lvl float64) (float64, uint8, bool) {
	if lvl > 0.2 {
		return 0, 0, false
	}
	w := smoothstep(0.2, 0.08, lvl) // how far into the skull base
	for _, side := range [2]float64{-1, 1} {
		ou, ov := side*0.42*a, -0.72*b
		r := math.Hypot(u-ou, v-ov)
		or := 17 * w
		switch {
		case r < or-1.5 && math.Hypot(u-ou, v-ov+6*w) < 11*w:
			if math.Hypot(u-ou, v-ov+15*w) < 3*w {
				return 110, labSoft, true // lens
			}
			return 12, labSoft, true // globe
		case r < or-1.5:
			return -85, labSoft, true // orbital fat
		case r < or:
			return 800, labBone, true
		}
		// petrous ridge, running posterolaterally from the clivus
		if lvl < 0.14 {
			t := (u-side*8)*side*0.8 + (v-0.02*b)*0.6
			if t > 0 && t < 0.62*a {
				d := math.Abs(-(u-side*8)*side*0.6 + (v-0.02*b)*0.8)
				if d < (5*w+1)*(1-0.6*t/(0.62*a)) {
					if t > 0.45*a && d < 3*w {
						return -700, labAir, true // mastoid air cells
					}
					return 1500, labBone, true
				}
			}
		}
	}
	if math.Abs(u) < 12*w && v < -0.5*b {
		if math.Cos(u*0.9+0.3*v)*math.Cos(v*0.7-0.2*u) > 0.6 {
			return 600, labBone, true // ethmoid septa
		}
		return -850, labAir, true
	}
	if lvl < 0.1 && math.Hypot(u/13, (v+0.3*b)/10) < 1 {
		return -950, labAir, true // sphenoid sinus
	}
	return 0, 0, false
}

// deep draws the structures inside the brain: ventricles shaped and sized
// by level, deep grey nuclei, the falx, and calcifications of the pineal
// gland and choroid plexus.
func (h *ctHead) deep(u, v, a, b, lvl float64) (float64, uint8, bool) {
	vs := h.vent
	lat := smoothstep(0.33, 0.42, lvl) * smoothstep(0.72, 0.6, lvl) * vs
	au := math.Abs(u)
	if lat > 0 {
		// lateral ventricles either side of the septum: a curved body
		// diverging to the frontal horn in front and the atrium behind,
		// both wider than the body
		vn := v / (0.32 * b * lat) // -1 frontal horn tip, +1 occipital
		mid := 2 + 4*lat + 9*sq(vn)
		half := lat * (1.5 + 3*math.Exp(-sq((vn+0.55)/0.3)) + 3.5*math.Exp(-sq((vn-0.55)/0.3)))
		if au > 1.2 && math.Abs(vn) < 1 && math.Abs(au-mid) < half {
			if h.choroid > 0 && math.Hypot(au-mid, v-0.55*0.32*b*lat) < 2.5 {
				return h.choroid, labCalc, true
			}
			return 6, labCSF, true
		}
	}
	if t := smoothstep(0.28, 0.33, lvl) * smoothstep(0.45, 0.4, lvl); t > 0 {
		if au < 1.5*vs && math.Abs(v-0.02*b) < 11*t {
			return 6, labCSF, true // third ventricle
		}
		if math.Hypot(au-16, v) < 11*t {
			return lerp(h.white, h.grey-2, 0.85), labGrey, true // thalamus
		}
		if h.pineal > 0 && math.Hypot(u, v-0.2*b) < 2.2 {
			return h.pineal, labCalc, true
		}
	}
	if t := smoothstep(0.06, 0.1, lvl) * smoothstep(0.22, 0.18, lvl); t > 0 && math.Hypot(u/6, (v-0.33*b)/5) < t {
		return 6, labCSF, true // fourth ventricle
	}
	if lvl > 0.3 && au < 2 && (math.Abs(v) > 0.45*b || lvl > 0.72) {
		if au < 0.5 {
			return 44, labSoft, true // falx
		}
		return 8, labCSF, true // interhemispheric fissure
	}
	return 0, 0, false
}

func sq(x float64) float64 { return x * x }

// coversSubdural says whether a point di mm inside the inner table at
// angle theta, zl mm up, lies in the subdural crescent.
func (bl *ctBleed) coversSubdural(theta, zl, di float64) bool {
	dt := math.Remainder(theta-bl.theta, 2*math.Pi) / bl.span
	zm, zh := (bl.z0+bl.z1)/2, (bl.z1-bl.z0)/2
	dz := (zl - zm) / zh
	if math.Abs(dt) >= 1 || math.Abs(dz) >= 1 {
		return false
	}
	return di < bl.tmax*(1-dt*dt)*math.Sqrt(1-dz*dz)
}

// parenchymal is the normalised radius q of (u, v, zl) in the blob (≤ 1
// inside) and its distance beyond the boundary in mm.
func (bl *ctBleed) parenchymal(u, v, zl float64) (q, edge float64) {
	du, dv, dz := (u-bl.u)/bl.ru, (v-bl.v)/bl.rv, (zl-bl.z)/bl.rz
	// the boundary modulation scales each section alike, so the caps
	// are small blobs of the same outline, not lobes
	q = math.Sqrt(sq(math.Hypot(du, dv)/(1+bl.shape.at(math.Atan2(dv, du)))) + dz*dz)
	return q, (q - 1) * (bl.ru + bl.rv) / 2
}

// writeCTHead encodes the series.
func writeCTHead(s Spec, st ctStudy) ([]Instance, error) {
	id := s.identity()
	seriesUID, frameUID := s.uid("series", 0), s.uid("frame-of-reference", 0)
	out := make([]Instance, len(st.slices))
	half := (ctSize - 1) / 2.0
	for i, sl := range st.slices {
		b := s.common(id, series{
			sopClass: uidCTImageStorage, sopInstance: s.uid("instance", i+1),
			modality: "CT", seriesUID: seriesUID, seriesNumber: 2, instanceNumber: i + 1,
			model: "phantom-ct-head", acquisition: id.studyTime,
		})
		b.Str(tag.ImageType, "ORIGINAL", "PRIMARY", "AXIAL")
		b.Str(tag.BodyPartExamined, "HEAD")
		b.Str(tag.PatientPosition, "HFS")
		b.Str(tag.FrameOfReferenceUID, frameUID)
		b.Str(tag.PositionReferenceIndicator, "")
		b.Str(tag.AcquisitionNumber, "1")
		b.Str(tag.ScanOptions, "AXIAL")
		b.Str(tag.KVP, "120")
		b.Str(tag.DataCollectionDiameter, "250")
		b.Str(tag.ReconstructionDiameter, dsbuild.DS(ctSize*ctSpacing))
		b.Str(tag.GantryDetectorTilt, "0")
		b.Str(tag.TableHeight, "150")
		b.Str(tag.RotationDirection, "CW")
		b.Str(tag.ExposureTime, "1000")
		b.Str(tag.XRayTubeCurrent, "300")
		b.Str(tag.Exposure, "300")
		b.Str(tag.ConvolutionKernel, "H30s")
		b.Str(tag.PatientOrientation, "L", "P")
		b.Str(tag.SliceThickness, dsbuild.DS(st.thickness))
		b.Str(tag.ImagePositionPatient, dsbuild.DSList(-half*ctSpacing, -half*ctSpacing, sl.z)...)
		b.Str(tag.ImageOrientationPatient, "1", "0", "0", "0", "1", "0")
		b.Str(tag.SliceLocation, dsbuild.DS(sl.z))
		b.Str(tag.PixelSpacing, dsbuild.DS(ctSpacing), dsbuild.DS(ctSpacing))
		b.Str(tag.RescaleIntercept, strconv.Itoa(huRescale))
		b.Str(tag.RescaleSlope, "1")
		b.Str(tag.RescaleType, "HU")
		b.Str(tag.WindowCenter, "40")
		b.Str(tag.WindowWidth, "80")
		b.Str(tag.WindowCenterWidthExplanation, "BRAIN")
		imagePixel(b, ctSize, ctSize, 16, 1, sl.raw)
		data, err := dsbuild.Encode(b, len(sl.raw)+4096)
		if err != nil {
			return nil, err
		}
		out[i] = Instance{SOPInstanceUID: s.uid("instance", i+1), Data: data, Positive: sl.positive}
	}
	return out, nil
}
