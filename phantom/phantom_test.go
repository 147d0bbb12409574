package phantom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ctTestSlices keeps the CT tests quick under -race; the geometry and the
// hemorrhage cover the head whatever the count.
const ctTestSlices = 12

// generated caches what the tests render: a CXR costs seconds under -race.
var generated = map[Spec]rendered{}

type rendered struct {
	cxr   cxrImage
	ct    ctStudy
	insts []Instance
}

func generate(t *testing.T, s Spec) rendered {
	t.Helper()
	if r, ok := generated[s]; ok {
		return r
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	var r rendered
	var err error
	if s.Kind == KindCXR {
		r.cxr = renderCXR(s)
		var inst Instance
		inst, err = writeCXR(s, r.cxr)
		r.insts = []Instance{inst}
	} else {
		r.ct = renderCTHead(s)
		r.insts, err = writeCTHead(s, r.ct)
	}
	if err != nil {
		t.Fatal(err)
	}
	generated[s] = r
	return r
}

// allSpecs is every kind with every finding that fits it.
func allSpecs(seed uint64) []Spec {
	return []Spec{
		{Kind: KindCXR, Finding: None, Seed: seed},
		{Kind: KindCXR, Finding: Pneumothorax, Seed: seed},
		{Kind: KindCXR, Finding: Effusion, Seed: seed},
		{Kind: KindCTHead, Finding: None, Seed: seed, Slices: ctTestSlices},
		{Kind: KindCTHead, Finding: Hemorrhage, Seed: seed, Slices: ctTestSlices},
	}
}

func TestPhantomValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Spec
		want error
	}{
		{Spec{Kind: KindCXR, Finding: None}, nil},
		{Spec{Kind: KindCXR, Finding: Pneumothorax, Seed: 9}, nil},
		{Spec{Kind: KindCXR, Finding: Effusion}, nil},
		{Spec{Kind: KindCTHead, Finding: Hemorrhage}, nil},
		{Spec{Kind: KindCTHead, Finding: None, Slices: MaxSlices}, nil},
		{Spec{Kind: KindCTHead, Finding: None, Slices: 1}, nil},
		{Spec{Kind: "mr-knee", Finding: None}, ErrKind},
		{Spec{Finding: None}, ErrKind},
		{Spec{Kind: KindCXR, Finding: Hemorrhage}, ErrFinding},
		{Spec{Kind: KindCXR, Finding: ""}, ErrFinding},
		{Spec{Kind: KindCTHead, Finding: Effusion}, ErrFinding},
		{Spec{Kind: KindCTHead, Finding: "tumour"}, ErrFinding},
		{Spec{Kind: KindCTHead, Finding: None, Slices: MaxSlices + 1}, ErrSlices},
		{Spec{Kind: KindCTHead, Finding: None, Slices: -1}, ErrSlices},
		{Spec{Kind: KindCXR, Finding: None, Slices: 3}, ErrSlices},
	} {
		err := tc.s.Validate()
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%+v: Validate() = %v, want %v", tc.s, err, tc.want)
		}
		if tc.want != nil {
			if _, gerr := Generate(tc.s); !errors.Is(gerr, tc.want) {
				t.Errorf("%+v: Generate error %v, want %v", tc.s, gerr, tc.want)
			}
		}
	}
}

// peer is the path of a peer tool; its absence skips the test unless
// RADGATE_REQUIRE_PEERS=1.
func peer(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("RADGATE_REQUIRE_PEERS") == "1" {
			t.Fatalf("%s is required (RADGATE_REQUIRE_PEERS=1) but not installed: %v", name, err)
		}
		t.Skipf("%s not installed (Debian package %s); skipping", name, pkg)
	}
	return p
}

// TestPhantomDciodvfy runs dicom3tools' IOD checker on every kind and
// finding, and dcentvfy on the CT series: any Error line fails.
func TestPhantomDciodvfy(t *testing.T) {
	dciodvfy := peer(t, "dciodvfy", "dicom3tools")
	dcentvfy := peer(t, "dcentvfy", "dicom3tools")
	dir := t.TempDir()
	for _, s := range allSpecs(5) {
		var paths []string
		for i, inst := range generate(t, s).insts {
			p := filepath.Join(dir, string(s.Kind)+"-"+string(s.Finding)+"-"+strconv.Itoa(i+1)+".dcm")
			if err := os.WriteFile(p, inst.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
			checkVerifier(t, p, exec.Command(dciodvfy, p))
		}
		if len(paths) > 1 {
			checkVerifier(t, "series "+string(s.Finding), exec.Command(dcentvfy, paths...))
		}
	}
}

func checkVerifier(t *testing.T, what string, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Error"):
			t.Errorf("%s: %s: %s", filepath.Base(cmd.Path), what, line)
		case strings.HasPrefix(line, "Warning"):
			t.Logf("%s: %s: %s", filepath.Base(cmd.Path), what, line)
		}
	}
	if err != nil && !t.Failed() {
		t.Errorf("%s %s: %v\n%s", cmd.Path, what, err, out)
	}
}

// TestPhantomDcmdump checks that DCMTK reads every file to its end and
// sees the synthetic identity.
func TestPhantomDcmdump(t *testing.T) {
	dcmdump := peer(t, "dcmdump", "dcmtk")
	dir := t.TempDir()
	for _, s := range allSpecs(5) {
		inst := generate(t, s).insts[0]
		p := filepath.Join(dir, string(s.Kind)+"-"+string(s.Finding)+".dcm")
		if err := os.WriteFile(p, inst.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(dcmdump, "-dc", "+L", p).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("E: ")) {
			t.Fatalf("dcmdump %s: %v\n%s", p, err, out)
		}
		for _, want := range []string{"PHANTOM^", "PH-" + string(s.Kind) + "-5", Notice, "(7fe0,0010) OW"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("dcmdump %s: no %q", p, want)
			}
		}
	}
}

func parse(t *testing.T, data []byte, opts ...dicom.ParseOption) dicom.Dataset {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func strs(t *testing.T, ds dicom.Dataset, tg tag.Tag) []string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		t.Fatalf("%s: %v", tag.DebugString(tg), err)
	}
	return dicom.MustGetStrings(e.Value)
}

func floats(t *testing.T, ds dicom.Dataset, tg tag.Tag) []float64 {
	t.Helper()
	var out []float64
	for _, s := range strs(t, ds, tg) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s: %v", tag.DebugString(tg), err)
		}
		out = append(out, f)
	}
	return out
}

func pixelWords(t *testing.T, ds dicom.Dataset) []byte {
	t.Helper()
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatal(err)
	}
	return dicom.MustGetPixelDataInfo(e.Value).UnprocessedValueData
}

// TestPhantomDeterministic: the same spec gives the same bytes; another
// seed other pixels and UIDs; another finding other UIDs.
func TestPhantomDeterministic(t *testing.T) {
	for _, s := range []Spec{
		{Kind: KindCXR, Finding: Effusion, Seed: 5},
		{Kind: KindCTHead, Finding: Hemorrhage, Seed: 5, Slices: ctTestSlices},
	} {
		a := generate(t, s).insts
		b, err := Generate(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != len(b) {
			t.Fatalf("%+v: %d then %d instances", s, len(a), len(b))
		}
		for i := range a {
			if !bytes.Equal(a[i].Data, b[i].Data) || a[i].SOPInstanceUID != b[i].SOPInstanceUID || a[i].Positive != b[i].Positive {
				t.Errorf("%+v: instance %d differs between two runs", s, i)
			}
		}
		// the normal study of seed 5 against that of seed 6
		none := s
		none.Finding = None
		other := none
		other.Seed = 6
		n5, n6 := generate(t, none).insts, generate(t, other).insts
		pa, pc := parse(t, n5[len(n5)/2].Data, dicom.SkipProcessingPixelDataValue()), parse(t, n6[len(n6)/2].Data, dicom.SkipProcessingPixelDataValue())
		if bytes.Equal(pixelWords(t, pa), pixelWords(t, pc)) {
			t.Errorf("%+v: seeds 5 and 6 have the same pixels", s)
		}
		for _, tg := range []tag.Tag{tag.SOPInstanceUID, tag.SeriesInstanceUID, tag.StudyInstanceUID, tag.PatientID, tag.PatientName} {
			if strs(t, pa, tg)[0] == strs(t, pc, tg)[0] {
				t.Errorf("%+v: seeds 5 and 6 share %s", s, tag.DebugString(tg))
			}
		}
		if s.StudyInstanceUID() == none.StudyInstanceUID() || s.uid("instance", 1) == none.uid("instance", 1) {
			t.Errorf("%+v: the finding does not change the UIDs", s)
		}
		if s.Kind == KindCTHead {
			thicker := s
			thicker.Slices--
			deflt, full := s, s
			deflt.Slices, full.Slices = 0, DefaultSlices
			if s.StudyInstanceUID() == thicker.StudyInstanceUID() || s.uid("instance", 1) == thicker.uid("instance", 1) || deflt.StudyInstanceUID() != full.StudyInstanceUID() {
				t.Errorf("%+v: the UIDs do not follow the slice count", s)
			}
		}
		if !strings.HasPrefix(s.StudyInstanceUID(), "2.25.") || len(s.StudyInstanceUID()) > 64 {
			t.Errorf("bad UID %q", s.StudyInstanceUID())
		}
	}
}

func TestPhantomCXRAttributes(t *testing.T) {
	for _, s := range allSpecs(5)[:3] {
		r := generate(t, s)
		if len(r.insts) != 1 || r.insts[0].Positive != (s.Finding != None) {
			t.Fatalf("%+v: %d instances, positive %v", s, len(r.insts), r.insts[0].Positive)
		}
		ds := parse(t, r.insts[0].Data, dicom.SkipProcessingPixelDataValue())
		got := map[string]string{}
		for _, tg := range []tag.Tag{tag.SOPClassUID, tag.Modality, tag.BodyPartExamined, tag.ViewPosition, tag.PhotometricInterpretation, tag.PresentationLUTShape, tag.PresentationIntentType, tag.PatientName, tag.PatientID, tag.ImageComments, tag.SeriesDescription, tag.InstitutionName, tag.Manufacturer, tag.StudyInstanceUID} {
			got[tag.DebugString(tg)] = strings.Join(strs(t, ds, tg), `\`)
		}
		want := map[string]string{}
		for tg, v := range map[tag.Tag]string{
			tag.SOPClassUID: uidDXPresentation, tag.Modality: "DX", tag.BodyPartExamined: "CHEST", tag.ViewPosition: "PA",
			tag.PhotometricInterpretation: "MONOCHROME2", tag.PresentationLUTShape: "IDENTITY", tag.PresentationIntentType: "FOR PRESENTATION",
			tag.PatientName: "PHANTOM^CXR^5", tag.PatientID: "PH-cxr-5", tag.ImageComments: Notice, tag.SeriesDescription: Notice,
			tag.InstitutionName: manufacturer, tag.Manufacturer: manufacturer, tag.StudyInstanceUID: s.StudyInstanceUID(),
		} {
			want[tag.DebugString(tg)] = v
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%+v: attributes (-want +got):\n%s", s, d)
		}
		raw := pixelWords(t, ds)
		if !bytes.Equal(raw, r.cxr.raw) {
			t.Fatalf("%+v: PixelData is not the rendered image", s)
		}
		for i := 0; i < len(raw); i += 2 {
			if v := binary.LittleEndian.Uint16(raw[i:]); v > cxrMaxValue {
				t.Fatalf("%+v: pixel %d is %d, more than 12 bits", s, i/2, v)
			}
		}
	}
}

// labelMean is the mean stored value of the pixels labelled lab (and
// their count).
func labelMean(raw []byte, label []uint8, lab uint8) (mean float64, n int) {
	var sum float64
	for p, l := range label {
		if l == lab {
			sum += float64(binary.LittleEndian.Uint16(raw[2*p:]))
			n++
		}
	}
	return sum / float64(max(n, 1)), n
}

// TestPhantomCXRFindings compares each finding with the same seed's
// normal chest: the anatomy, exposure and noise are the same, so away
// from the affected lung the pixels agree exactly; in the pleural air the
// image is darker than the lung was, under the fluid brighter.
func TestPhantomCXRFindings(t *testing.T) {
	for _, seed := range []uint64{5} { // more seeds cost seconds each under -race
		none := generate(t, Spec{Kind: KindCXR, Finding: None, Seed: seed}).cxr
		for lab := cxPneumothorax; lab <= cxEffusion; lab++ {
			if _, n := labelMean(none.raw, none.label, lab); n > 0 {
				t.Fatalf("seed %d: the normal chest has %d pixels of label %d", seed, n, lab)
			}
		}
		for _, f := range []Finding{Pneumothorax, Effusion} {
			s := Spec{Kind: KindCXR, Finding: f, Seed: seed}
			img := generate(t, s).cxr
			fd := newCXRFinding(s.streams().finding, s, new(newChest(s.streams().anatomy)))
			// pixels outside the affected lung's half are untouched
			var changed, outside int
			for p := range img.label {
				if binary.LittleEndian.Uint16(img.raw[2*p:]) == binary.LittleEndian.Uint16(none.raw[2*p:]) {
					continue
				}
				changed++
				if none.label[p] != cxLung {
					outside++
				}
			}
			if changed == 0 || outside > changed/50 {
				t.Errorf("%+v: %d pixels changed, %d of them outside the lungs", s, changed, outside)
			}
			lab, sign := cxPneumothorax, -1.0
			if f == Effusion {
				lab, sign = cxEffusion, 1
			}
			mf, n := labelMean(img.raw, img.label, lab)
			var mn float64
			for p, l := range img.label {
				if l == lab {
					mn += float64(binary.LittleEndian.Uint16(none.raw[2*p:]))
				}
			}
			mn /= float64(max(n, 1))
			t.Logf("%+v (side %d): %d pixels labelled %d, mean %.0f against %.0f without", s, fd.side, n, lab, mf, mn)
			if n < 2000 || sign*(mf-mn) < 20 {
				t.Errorf("%+v: finding region of %d pixels, mean %.0f against %.0f in the normal chest", s, n, mf, mn)
			}
			if f == Pneumothorax {
				checkPneumothorax(t, s, img)
			}
		}
	}
}

// checkPneumothorax: no vessels in the pleural air, and the pleural line
// is brighter than the air beside it.
func checkPneumothorax(t *testing.T, s Spec, img cxrImage) {
	t.Helper()
	st := s.streams()
	c := newChest(st.anatomy)
	fd := newCXRFinding(st.finding, s, &c)
	l := &c.lungs[fd.side]
	var withVessels int
	for p, lab := range img.label {
		if lab != cxPneumothorax {
			continue
		}
		// the renderer zeroes the vessels here; check that the
		// collapsed lung does not reach the pixel either
		x, y := c.anatomical(float64(p%cxrSize), float64(p/cxrSize))
		if l.f(fd.ax+(x-fd.ax)/fd.scale, fd.ay+(y-fd.ay)/fd.scale) > 0 {
			withVessels++
		}
	}
	if withVessels > 0 {
		t.Errorf("%+v: %d pneumothorax pixels inside the collapsed lung", s, withVessels)
	}
	line, nl := labelMean(img.raw, img.label, cxPleuralLine)
	air, _ := labelMean(img.raw, img.label, cxPneumothorax)
	if nl < 100 || line <= air {
		t.Errorf("%+v: pleural line of %d pixels, mean %.0f, air %.0f", s, nl, line, air)
	}
}

// TestPhantomCTGeometry reads the series back: one study, series and
// frame of reference; positions step by the slice thickness along the
// normal of the orientation; instance numbers 1..N.
func TestPhantomCTGeometry(t *testing.T) {
	s := Spec{Kind: KindCTHead, Finding: Hemorrhage, Seed: 5, Slices: ctTestSlices}
	insts := generate(t, s).insts
	if len(insts) != ctTestSlices {
		t.Fatalf("%d instances, want %d", len(insts), ctTestSlices)
	}
	var prev []float64
	var series, frame string
	for i, inst := range insts {
		ds := parse(t, inst.Data, dicom.SkipProcessingPixelDataValue())
		if got := strs(t, ds, tag.SOPInstanceUID)[0]; got != inst.SOPInstanceUID {
			t.Errorf("slice %d: SOPInstanceUID %s, Instance says %s", i, got, inst.SOPInstanceUID)
		}
		if got := strs(t, ds, tag.StudyInstanceUID)[0]; got != s.StudyInstanceUID() {
			t.Errorf("slice %d: study %s, want %s", i, got, s.StudyInstanceUID())
		}
		if n := strs(t, ds, tag.InstanceNumber)[0]; n != strconv.Itoa(i+1) {
			t.Errorf("slice %d: InstanceNumber %s", i, n)
		}
		if i == 0 {
			series, frame = strs(t, ds, tag.SeriesInstanceUID)[0], strs(t, ds, tag.FrameOfReferenceUID)[0]
		} else if strs(t, ds, tag.SeriesInstanceUID)[0] != series || strs(t, ds, tag.FrameOfReferenceUID)[0] != frame {
			t.Errorf("slice %d: another series or frame of reference", i)
		}
		iop := floats(t, ds, tag.ImageOrientationPatient)
		if d := cmp.Diff([]float64{1, 0, 0, 0, 1, 0}, iop); d != "" {
			t.Errorf("slice %d: orientation (-want +got):\n%s", i, d)
		}
		normal := []float64{iop[1]*iop[5] - iop[2]*iop[4], iop[2]*iop[3] - iop[0]*iop[5], iop[0]*iop[4] - iop[1]*iop[3]}
		ipp := floats(t, ds, tag.ImagePositionPatient)
		thick := floats(t, ds, tag.SliceThickness)[0]
		if loc := floats(t, ds, tag.SliceLocation)[0]; math.Abs(loc-ipp[2]) > 1e-6 {
			t.Errorf("slice %d: SliceLocation %v, position z %v", i, loc, ipp[2])
		}
		if prev != nil {
			var along, off float64
			for k := range 3 {
				along += (ipp[k] - prev[k]) * normal[k]
			}
			off = math.Hypot(ipp[0]-prev[0], ipp[1]-prev[1])
			if math.Abs(along-thick) > 1e-3 || off > 1e-9 {
				t.Errorf("slice %d: step %.4f along the normal (thickness %v), %.4f across", i, along, thick, off)
			}
		}
		prev = ipp
		if d := cmp.Diff([]float64{ctSpacing, ctSpacing}, floats(t, ds, tag.PixelSpacing)); d != "" {
			t.Errorf("slice %d: PixelSpacing (-want +got):\n%s", i, d)
		}
	}
	if want := ctCoverageMM / ctTestSlices; math.Abs(floats(t, parse(t, insts[0].Data, dicom.SkipPixelData()), tag.SliceThickness)[0]-want) > 0.01 {
		t.Errorf("thickness is not %v", want)
	}
}

// TestPhantomCTHU decodes the pixels with suyashkumar/dicom and checks the
// HU of each tissue the renderer labelled, the hemorrhage against the
// parenchyma, and that Positive is exactly the slices with hemorrhage.
func TestPhantomCTHU(t *testing.T) {
	var bleeds int
	for _, seed := range []uint64{5, 6, 7, 8} {
		for _, f := range []Finding{None, Hemorrhage} {
			s := Spec{Kind: KindCTHead, Finding: f, Seed: seed, Slices: ctTestSlices}
			r := generate(t, s)
			sum, cnt := map[uint8]float64{}, map[uint8]int{}
			var positives int
			for i, sl := range r.ct.slices {
				// the library's own decoding for the middle slice
				hu := decodeHU(t, r.insts[i].Data, i == len(r.ct.slices)/2)
				var n int
				for p, lab := range sl.label {
					sum[lab] += hu[p]
					cnt[lab]++
					if lab == labBleed {
						n++
					}
				}
				if r.insts[i].Positive != (n > 0) || (n > 0 && n < ctMinBleedPixels) {
					t.Errorf("%+v slice %d: Positive %v with %d hemorrhage pixels", s, i+1, r.insts[i].Positive, n)
				}
				if r.insts[i].Positive {
					positives++
				}
			}
			mean := func(lab uint8) float64 { return sum[lab] / float64(max(cnt[lab], 1)) }
			for _, w := range []struct {
				lab    uint8
				lo, hi float64
			}{
				{labAir, -1002, -998}, {labBone, 700, 1500}, {labCSF, 0, 15}, {labGrey, 33, 42}, {labWhite, 25, 36},
			} {
				if m := mean(w.lab); m < w.lo || m > w.hi || cnt[w.lab] == 0 {
					t.Errorf("%+v: label %d: mean %.1f HU over %d pixels, want %v..%v", s, w.lab, m, cnt[w.lab], w.lo, w.hi)
				}
			}
			if f == None {
				if positives > 0 || cnt[labBleed] > 0 {
					t.Errorf("%+v: %d positive slices in a normal head", s, positives)
				}
				continue
			}
			bleeds++
			bm, par := mean(labBleed), (sum[labGrey]+sum[labWhite])/float64(cnt[labGrey]+cnt[labWhite])
			t.Logf("%+v: %d positive slices, hemorrhage %.1f HU over %d pixels, parenchyma %.1f HU", s, positives, bm, cnt[labBleed], par)
			if positives == 0 || bm < 48 || bm > 92 || bm-par < 12 {
				t.Errorf("%+v: %d positive slices, hemorrhage %.1f HU, parenchyma %.1f HU", s, positives, bm, par)
			}
		}
	}
	if bleeds == 0 {
		t.Fatal("no hemorrhage checked")
	}
}

// decodeHU reads a slice back with suyashkumar/dicom and applies the
// rescale. With decode the library unpacks the pixels (slow under -race:
// one read per pixel); otherwise it hands over the PixelData value.
func decodeHU(t *testing.T, data []byte, decode bool) []float64 {
	t.Helper()
	var words []uint16
	var ds dicom.Dataset
	if decode {
		ds = parse(t, data)
		e, err := ds.FindElementByTag(tag.PixelData)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := dicom.MustGetPixelDataInfo(e.Value).Frames[0].GetNativeFrame()
		if err != nil {
			t.Fatal(err)
		}
		words, _ = fr.RawDataSlice().([]uint16)
	} else {
		ds = parse(t, data, dicom.SkipProcessingPixelDataValue())
		raw := pixelWords(t, ds)
		words = make([]uint16, len(raw)/2)
		for i := range words {
			words[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
	}
	if len(words) != ctSize*ctSize {
		t.Fatalf("pixel data: %d words", len(words))
	}
	slope, icpt := floats(t, ds, tag.RescaleSlope)[0], floats(t, ds, tag.RescaleIntercept)[0]
	hu := make([]float64, len(words))
	for p, w := range words {
		hu[p] = float64(int16(w))*slope + icpt // PixelRepresentation 1
	}
	return hu
}
