package phantom

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/radgate/radgate/internal/dsbuild"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Geometry and physics of the chest radiograph.
const (
	uidDXPresentation = "1.2.840.10008.5.1.4.1.1.1.1"
	cxrSize           = 2048 // rows and columns
	cxrSpacing        = 0.17 // mm at the detector: a 348 mm field
	cxrMaxValue       = 4095 // 12 bits stored
	muSoft            = 0.02 // attenuation of soft tissue and fluid, per mm
	muBone            = 0.05
)

// Labels of a CXR pixel.
const (
	cxOutside uint8 = iota
	cxBody
	cxLung
	cxPneumothorax // pleural air: inside the chest wall, outside the lung
	cxPleuralLine  // the visceral pleura of the collapsed lung
	cxEffusion
)

// lung is one lung in mirrored coordinates: xs = side·x grows laterally.
type lung struct {
	side         float64 // -1: image left, the patient's right; +1
	apexX, apexY float64 // mm
	wall         float64 // xs of the lateral wall at its widest
	domeX, domeY float64 // top of the hemidiaphragm
	cpY          float64 // y of the costophrenic angle
	k            float64 // dome curvature
	depth        float64 // greatest air path through the lung (mm)
	// lateral and medial borders (xs) every lungStep mm down from the apex
	lat, med []float64
}

// lungStep is the row step of a lung's border tables (mm).
const lungStep = 0.25

// chest is the seed's anatomy and exposure.
type chest struct {
	cosR, sinR, sx, sy float64 // rotation and shift of the patient
	bodyW, bodyT       float64 // half width and AP thickness of the trunk (mm)
	neckW, neckY       float64
	mediastinum        float64 // half width above the heart (mm)
	aorta              float64 // bulge of the aortic knob (mm)
	heartX, heartY     float64 // centre (mm)
	heartA, heartB     float64 // semi-axes
	lungs              [2]lung
	ribs               [2]ribCage
	clavicleY          float64
	parenchyma         float64 // lung tissue path per mm of lung air
	gain, offset       float64 // grey levels per unit of attenuation, black level
	photons            float64 // quanta per pixel at the detector without attenuation
	texture            *valueNoise
}

// ribCage is one side's ribs: a shared centre-line shape, offset per rib.
type ribCage struct {
	spine, width float64   // xs where the ribs start, lateral reach
	post, ant    []float64 // y offset of each posterior and anterior rib
	thick        float64   // rib height (mm)
}

// cxrFinding is the finding's geometry.
type cxrFinding struct {
	kind           Finding
	side           int     // index into chest.lungs
	scale          float64 // pneumothorax: collapsed lung = lung scaled about anchor
	ax, ay         float64
	line           float64 // pleural line width (mm)
	level          float64 // effusion: y of the fluid at the medial side
	meniscus, ramp float64
}

type cxrImage struct {
	raw    []byte
	label  []uint8
	vessel []float32 // vessel path (mm of blood) drawn for the full lungs
	window [2]float64
}

func newChest(r *rand.Rand) chest {
	rot := between(r, -0.05, 0.05)
	c := chest{
		cosR: math.Cos(rot), sinR: math.Sin(rot),
		sx: between(r, -10, 10), sy: between(r, -12, 12),
		bodyW: between(r, 145, 168), bodyT: between(r, 190, 250),
		neckW: between(r, 50, 65), neckY: between(r, -190, -170),
		mediastinum: between(r, 24, 34),
		aorta:       between(r, 4, 16),
		parenchyma:  between(r, 0.08, 0.14),
		gain:        between(r, 600, 760), offset: between(r, 60, 160),
		photons: math.Exp(between(r, math.Log(2e4), math.Log(1.2e5))),
	}
	wall := c.bodyW - between(r, 18, 30)
	apexY := between(r, -160, -140)
	domeR := between(r, 55, 95)
	for i, side := range [2]float64{-1, 1} {
		dome := domeR
		if side > 0 {
			dome += between(r, 5, 25) // the left hemidiaphragm sits lower
		}
		w := wall * between(r, 0.95, 1.02)
		l := lung{
			side: side, apexX: between(r, 0.35, 0.5) * w, apexY: apexY + between(r, -6, 6),
			wall: w, domeX: between(r, 0.3, 0.45) * w, domeY: dome,
			cpY: dome + between(r, 35, 55), depth: between(r, 110, 160),
		}
		l.k = (l.cpY - l.domeY) / sq(l.wall-l.domeX)
		c.lungs[i] = l
		c.ribs[i] = ribCage{spine: 15, width: w + 8, thick: between(r, 9, 12)}
		y := apexY - 4
		for range 10 {
			c.ribs[i].post = append(c.ribs[i].post, y)
			y += between(r, 19, 25) * (1 + 0.025*float64(len(c.ribs[i].post)))
		}
		for k := range 6 {
			c.ribs[i].ant = append(c.ribs[i].ant, c.ribs[i].post[k+1]+between(r, 20, 30))
		}
	}
	c.clavicleY = apexY + between(r, 5, 20)
	ctr := between(r, 0.38, 0.52) // cardiothoracic ratio
	c.heartA = ctr * wall
	c.heartB = c.heartA * between(r, 0.7, 0.85)
	c.heartX = c.heartA * between(r, 0.35, 0.5)
	c.heartY = domeR - c.heartB*between(r, 0.55, 0.75)
	c.texture = newValueNoise(r, cxrSize, cxrSize, 18)
	for i := range c.lungs {
		c.lungs[i].tabulate(&c)
	}
	return c
}

func newCXRFinding(r *rand.Rand, s Spec, c *chest) *cxrFinding {
	if s.Finding == None {
		return nil
	}
	f := &cxrFinding{kind: s.Finding, side: r.IntN(2)}
	l := &c.lungs[f.side]
	if s.Finding == Pneumothorax {
		// from a rim at the apex to a lung collapsed to half its height
		f.scale = 1 - math.Pow(between(r, 0, 1), 1.6)*0.5 - 0.04
		// anchored at the lower medial corner: in an upright patient the
		// air collects at the apex and along the lateral wall
		f.ay = l.domeY + between(r, 0, 15)
		f.ax = l.side * l.medial(f.ay, c)
		f.line = between(r, 0.5, 1.0)
		return f
	}
	// from a blunted costophrenic angle to fluid up to mid-lung
	vol := math.Pow(between(r, 0, 1), 1.4)
	f.level = lerp(l.cpY-8, l.domeY-95, vol)
	f.meniscus = between(r, 10, 30)
	f.ramp = between(r, 8, 25)
	return f
}

// medial is the xs of the lung's medial border at y: the mediastinum above,
// the heart below.
func (l *lung) medial(y float64, c *chest) float64 {
	m := c.mediastinum + 0.03*max(y-l.apexY, 0)
	if l.side > 0 { // the aortic knob
		m += c.aorta * math.Exp(-sq((y-l.apexY-50)/14))
	}
	// the heart tapers upwards into the great vessels
	dy := (y - c.heartY) / c.heartB
	if dy < 0 {
		dy /= 2.2
	}
	if dy > -1 && dy < 1 {
		w := 1 - dy*dy
		if dy > 0 {
			w = math.Pow(w, 0.6)
		} else {
			w *= w // meets the great vessels tangentially
		}
		m = max(m, (l.side*c.heartX+c.heartA)*w)
	}
	return m
}

// tabulate fills the border tables: from the apex the lung widens like a
// half ellipse both ways, to the chest wall laterally and to the
// mediastinum and heart medially.
func (l *lung) tabulate(c *chest) {
	n := int((l.cpY-l.apexY)/lungStep) + 2
	l.lat, l.med = make([]float64, n), make([]float64, n)
	for i := range n {
		y := l.apexY + float64(i)*lungStep
		t := (y - l.apexY) / (l.cpY - l.apexY)
		prof := math.Sqrt(math.Sin(math.Pi / 2 * min(t/0.45, 1)))
		l.lat[i] = l.apexX + (l.wall-l.apexX)*prof - 6*max(t-0.7, 0)
		l.med[i] = l.apexX - (l.apexX-l.medial(y, c))*prof
	}
}

// f is a signed inside measure (mm, positive inside) of the lung at
// anatomical (x, y): the least of the distances to the lateral, medial,
// diaphragmatic and apical borders along x or y.
func (l *lung) f(x, y float64) float64 {
	xs := l.side * x
	if y <= l.apexY {
		return min(y-l.apexY, -math.Abs(xs-l.apexX))
	}
	fi := min((y-l.apexY)/lungStep, float64(len(l.lat)-1))
	i := min(int(fi), len(l.lat)-2)
	t := fi - float64(i)
	lat := lerp(l.lat[i], l.lat[i+1], t)
	med := lerp(l.med[i], l.med[i+1], t)
	base := l.domeY + l.k*sq(xs-l.domeX)
	return min(lat-xs, xs-med, base-y)
}

// fGrad is f divided by the length of its gradient: a signed distance
// near the border.
func (l *lung) fGrad(x, y float64) float64 {
	const h = 0.3
	f := l.f(x, y)
	gx, gy := (l.f(x+h, y)-f)/h, (l.f(x, y+h)-f)/h
	return f / math.Max(math.Hypot(gx, gy), 0.3)
}

func (c *chest) anatomical(px, py float64) (x, y float64) {
	dx := (px-(cxrSize-1)/2.0)*cxrSpacing - c.sx
	dy := (py-(cxrSize-1)/2.0)*cxrSpacing - c.sy
	return c.cosR*dx + c.sinR*dy, -c.sinR*dx + c.cosR*dy
}

func (c *chest) pixel(x, y float64) (px, py float64) {
	dx, dy := c.cosR*x-c.sinR*y, c.sinR*x+c.cosR*y
	return (dx+c.sx)/cxrSpacing + (cxrSize-1)/2.0, (dy+c.sy)/cxrSpacing + (cxrSize-1)/2.0
}

func renderCXR(s Spec) cxrImage {
	st := s.streams()
	c := newChest(st.anatomy)
	fd := newCXRFinding(st.finding, s, &c)
	img := cxrImage{
		raw:    make([]byte, 2*cxrSize*cxrSize),
		label:  make([]uint8, cxrSize*cxrSize),
		vessel: make([]float32, cxrSize*cxrSize),
	}
	for i := range c.lungs {
		c.drawVessels(st.anatomy, &c.lungs[i], img.vessel)
	}
	for py := range cxrSize {
		for px := range cxrSize {
			p := py*cxrSize + px
			d, lab := c.attenuation(float64(px), float64(py), fd, img.vessel)
			// quantum noise: relative σ of the detected quanta, in the
			// log domain the image is displayed in
			d += st.noise.NormFloat64() * math.Exp(d/2) / math.Sqrt(c.photons)
			v := math.Round(min(max(c.offset+c.gain*d, 0), cxrMaxValue))
			binary.LittleEndian.PutUint16(img.raw[2*p:], uint16(v))
			img.label[p] = lab
		}
	}
	img.window = [2]float64{c.offset + c.gain*2.6, c.gain * 5}
	return img
}

// attenuation is the line integral of attenuation at pixel (px, py) and
// the pixel's label.
func (c *chest) attenuation(px, py float64, fd *cxrFinding, vessel []float32) (float64, uint8) {
	x, y := c.anatomical(px, py)
	halfW := lerp(c.neckW, c.bodyW, smoothstep(c.neckY+20, c.neckY+90, y))
	q := 1 - sq(x/halfW)
	if q <= 0 {
		return 0, cxOutside
	}
	thick := lerp(0.55, 1, smoothstep(c.neckY+10, c.neckY+100, y)) * c.bodyT * math.Sqrt(q)
	d := muSoft * thick
	lab := cxBody
	d += c.bones(x, y)
	// trachea, gas in the stomach
	if ax := math.Abs(x); ax < 10 && y < c.heartY-c.heartB-10 {
		d -= 0.3 * math.Sqrt(1-sq(ax/10)) * smoothstep(c.heartY-c.heartB-10, c.heartY-c.heartB-25, y)
	}
	if g := sq((x-0.5*c.lungs[1].wall)/28) + sq((y-c.lungs[1].domeY-30)/16); g < 1 {
		d -= 0.4 * math.Sqrt(1-g) * smoothstep(c.lungs[1].domeY+28, c.lungs[1].domeY+18, y)
	}
	for i := range c.lungs {
		l := &c.lungs[i]
		f := l.f(x, y)
		if f <= 0 {
			continue
		}
		lab = cxLung
		t := (y - l.apexY) / (l.cpY - l.apexY)
		air := l.depth * (0.75 + 0.25*t) * math.Sqrt(min(f/25, 1))
		tissue := c.parenchyma * air * (1 + 0.35*c.texture.at(px, py))
		ves := float64(vessel[int(py)*cxrSize+int(px)])
		if fd != nil && fd.side == i {
			switch fd.kind {
			case Pneumothorax:
				// The lung has fallen away from the chest wall: its
				// tissue and vessels are those of the whole lung
				// scaled about the anchor; pleural air outside.
				cx, cy := fd.ax+(x-fd.ax)/fd.scale, fd.ay+(y-fd.ay)/fd.scale
				fc := l.f(cx, cy) * fd.scale
				switch {
				case fc > 0:
					vx, vy := c.pixel(cx, cy)
					ves = sample(vessel, vx, vy)
					tissue *= 1 / fd.scale
				case fc > -4 && -l.fGrad(cx, cy)*fd.scale < fd.line:
					ves, tissue, lab = 0, 0, cxPleuralLine
					d += muSoft * 3.5 * (1 - sq(2*l.fGrad(cx, cy)*fd.scale/fd.line+1))
				default:
					ves, tissue, lab = 0, 0, cxPneumothorax
				}
			case Effusion:
				xs := l.side * x
				med := l.medial(fd.level, c)
				top := fd.level - fd.meniscus*sq(max(xs-med, 0)/(l.wall-med))
				if ff := smoothstep(top, top+fd.ramp, y); ff > 0 {
					air *= 1 - ff
					tissue *= 1 - ff
					ves *= 1 - ff
					if ff >= 0.5 {
						lab = cxEffusion
					}
				}
			}
		}
		d += muSoft * (tissue + 1.5*ves - air)
	}
	return d, lab
}

// sample is the vessel buffer at pixel (x, y), bilinear; 0 outside.
func sample(v []float32, x, y float64) float64 {
	ix, iy := int(math.Floor(x)), int(math.Floor(y))
	if ix < 0 || iy < 0 || ix >= cxrSize-1 || iy >= cxrSize-1 {
		return 0
	}
	tx, ty := x-float64(ix), y-float64(iy)
	i := iy*cxrSize + ix
	top := lerp(float64(v[i]), float64(v[i+1]), tx)
	bot := lerp(float64(v[i+cxrSize]), float64(v[i+cxrSize+1]), tx)
	return lerp(top, bot, ty)
}

// bones is the attenuation of ribs, clavicles and spine at (x, y).
func (c *chest) bones(x, y float64) float64 {
	var d float64
	// spine: vertebral bodies with disc spaces
	if ax := math.Abs(x); ax < 24 {
		disc := 0.85 + 0.15*smoothstep(0.1, 0.25, math.Abs(math.Mod(y+400, 26)/26-0.5))
		d += muBone * 7 * math.Sqrt(1-sq(ax/24)) * disc
	}
	side := 0
	if x > 0 {
		side = 1
	}
	rc := &c.ribs[side]
	xs := math.Abs(x)
	// clavicle: an S from the sternal end up to the shoulder
	if u := (xs - 20) / 140; u > 0 && u < 1 {
		cy := c.clavicleY + 10 - 25*u + 5*math.Sin(2*math.Pi*u)
		if dd := math.Abs(y-cy) / 8; dd < 1 {
			d += muBone * 16 * tube(dd) * smoothstep(0, 0.06, u) * smoothstep(1, 0.9, u)
		}
	}
	u := (xs - rc.spine) / rc.width
	if u <= 0 || u >= 1.05 {
		return d
	}
	// posterior ribs rise a little from the spine, then arc down the
	// lateral wall; anterior ribs run down and in from the wall
	g := rc.width * (-0.3*u + 0.5*u*u*u)
	gs := -0.3 + 1.5*u*u
	h := rc.thick / 2 * math.Sqrt(1+gs*gs)
	for _, y0 := range rc.post {
		if dd := math.Abs(y-y0-g) / h; dd < 1 {
			d += muBone * 5 * tube(dd) * smoothstep(0, 0.12, u)
		}
	}
	if u > 0.35 {
		ga := rc.width * 0.45 * (1 - u)
		for _, y0 := range rc.ant {
			if dd := math.Abs(y-y0-ga) / (rc.thick * 0.5); dd < 1 {
				d += muBone * 2.5 * tube(dd) * smoothstep(0.35, 0.55, u)
			}
		}
	}
	return d
}

// tube is the projected profile of a bone with a cortex at normalised
// distance dd from its centre line: brighter at the edges.
func tube(dd float64) float64 {
	return math.Sqrt(1-dd*dd) * (0.55 + 0.45*smoothstep(0.55, 0.9, dd))
}

// drawVessels grows the pulmonary vessel tree of l from its hilum and
// draws it into v as mm of blood along the beam.
func (c *chest) drawVessels(r *rand.Rand, l *lung, v []float32) {
	hy := l.apexY + 0.5*(l.domeY-l.apexY)
	hx := l.side * (l.medial(hy, c) + 4)
	for _, ang := range [...]float64{-1.2, -0.6, 0, 0.45, 0.9, 1.3} {
		a := ang + between(r, -0.15, 0.15)
		c.branch(r, l, v, hx, hy, l.side*math.Cos(a), math.Sin(a), between(r, 30, 45), between(r, 6, 9), 0)
	}
}

func (c *chest) branch(r *rand.Rand, l *lung, v []float32, x, y, dx, dy, length, width float64, depth int) {
	if width < 0.5 || depth > 9 {
		return
	}
	ex, ey := x+dx*length, y+dy*length
	if l.f(ex, ey) < 2 {
		// shorten to the lung and stop
		for length > 2 && l.f(ex, ey) < 2 {
			length *= 0.6
			ex, ey = x+dx*length, y+dy*length
		}
		c.segment(v, x, y, ex, ey, width)
		return
	}
	c.segment(v, x, y, ex, ey, width)
	for _, sgn := range [2]float64{-1, 1} {
		a := sgn*between(r, 0.25, 0.6) + between(r, -0.1, 0.1)
		ca, sa := math.Cos(a), math.Sin(a)
		c.branch(r, l, v, ex, ey, dx*ca-dy*sa, dx*sa+dy*ca, length*between(r, 0.65, 0.85), width*between(r, 0.68, 0.8), depth+1)
	}
}

// segment adds a cylinder of the given diameter (mm) from (x0, y0) to
// (x1, y1) (anatomical mm) to v: at each pixel its chord length.
func (c *chest) segment(v []float32, x0, y0, x1, y1, width float64) {
	p0x, p0y := c.pixel(x0, y0)
	p1x, p1y := c.pixel(x1, y1)
	rad := width / 2 / cxrSpacing
	lo := func(a, b float64) int { return max(int(math.Floor(min(a, b)-rad)), 0) }
	hi := func(a, b float64) int { return min(int(math.Ceil(max(a, b)+rad)), cxrSize-1) }
	sx, sy := p1x-p0x, p1y-p0y
	l2 := sx*sx + sy*sy
	for py := lo(p0y, p1y); py <= hi(p0y, p1y); py++ {
		for px := lo(p0x, p1x); px <= hi(p0x, p1x); px++ {
			t := ((float64(px)-p0x)*sx + (float64(py)-p0y)*sy) / l2
			t = min(max(t, 0), 1)
			ddx, ddy := float64(px)-p0x-t*sx, float64(py)-p0y-t*sy
			if d2 := (ddx*ddx + ddy*ddy) / (rad * rad); d2 < 1 {
				chord := float32(width * math.Sqrt(1-d2))
				i := py*cxrSize + px
				v[i] = max(v[i], chord)
			}
		}
	}
}

// writeCXR encodes the radiograph with the DX modules for presentation
// (PS3.3 A.26: DX Series, DX Anatomy Imaged, DX Image, DX Detector, DX
// Positioning, VOI LUT, Acquisition Context).
func writeCXR(s Spec, img cxrImage) (Instance, error) {
	id := s.identity()
	sop := s.uid("instance", 1)
	b := s.common(id, series{
		sopClass: uidDXPresentation, sopInstance: sop, modality: "DX",
		seriesUID: s.uid("series", 0), seriesNumber: 1, instanceNumber: 1,
		model: "phantom-cxr", acquisition: id.studyTime,
	})
	b.Str(tag.ImageType, "ORIGINAL", "PRIMARY")
	b.Str(tag.PresentationIntentType, "FOR PRESENTATION")
	b.Str(tag.BodyPartExamined, "CHEST")
	b.Str(tag.ImageLaterality, "U")
	b.Seq(tag.AnatomicRegionSequence, dsbuild.CodeItem("51185008", "SCT", "Chest"))
	b.Str(tag.PatientOrientation, "L", "F")
	b.Str(tag.ViewPosition, "PA")
	b.Seq(tag.ViewCodeSequence, dsbuild.CodeItem("399348003", "SCT", "postero-anterior"))
	b.Seq(tag.AcquisitionContextSequence)
	b.Str(tag.KVP, "125")
	b.Str(tag.ExposureTime, "8")
	b.Str(tag.XRayTubeCurrent, "320")
	b.Str(tag.Exposure, "3")
	b.Str(tag.DistanceSourceToDetector, "1800")
	b.Str(tag.DistanceSourceToPatient, "1650")
	b.Str(tag.EstimatedRadiographicMagnificationFactor, dsbuild.DS(1800.0/1650))
	b.Str(tag.PositionerType, "COLUMN")
	b.Str(tag.DetectorType, "SCINTILLATOR")
	b.Str(tag.DetectorConfiguration, "AREA")
	b.Str(tag.ImagerPixelSpacing, dsbuild.DS(cxrSpacing), dsbuild.DS(cxrSpacing))
	b.Str(tag.PixelIntensityRelationship, "LOG")
	b.Ints(tag.PixelIntensityRelationshipSign, -1)
	b.Str(tag.RescaleIntercept, "0")
	b.Str(tag.RescaleSlope, "1")
	b.Str(tag.RescaleType, "US")
	b.Str(tag.WindowCenter, dsbuild.DS(math.Round(img.window[0])))
	b.Str(tag.WindowWidth, dsbuild.DS(math.Round(img.window[1])))
	b.Str(tag.PresentationLUTShape, "IDENTITY")
	imagePixel(b, cxrSize, cxrSize, 12, 0, img.raw)
	data, err := dsbuild.Encode(b, len(img.raw)+4096)
	if err != nil {
		return Instance{}, err
	}
	return Instance{SOPInstanceUID: sop, Data: data, Positive: s.Finding != None}, nil
}
