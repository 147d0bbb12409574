package peertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The real CT slice the benchmark and the crash test copy: 512×512, 16 bit,
// from grailbio/go-dicom's examples (BSD-licensed; an anonymised GE HiSpeed
// CT/i slice that has travelled with DICOM toolkits for decades as
// CT-MONO2-16-ort). It is implicit VR little endian; TemplateCT converts it
// to explicit VR little endian with dcmconv.
const (
	GoDicomModule  = "github.com/grailbio/go-dicom@v0.0.0-20211105193521-b0e216a1c5cd"
	GoDicomExample = "examples/CT-MONO2-16-ort.dcm"
)

// The real chest radiograph of the inference tests: a CR, 2140×1760,
// MONOCHROME1, from TCIA's COVID-19 collection, as suyashkumar/dicom ships
// it (provenance in that module's testdata/data_details.md).
const (
	DicomModule       = "github.com/suyashkumar/dicom@v1.1.0"
	ChestRadiographCR = "testdata/4.dcm"
)

// RealChestRadiograph returns the path of that radiograph in the module
// cache, downloading the module if needed.
func RealChestRadiograph() (string, error) {
	return ModuleFile(context.Background(), DicomModule, ChestRadiographCR)
}

// Transfer syntaxes and classes the generator writes.
const (
	uidExplicitLE = "1.2.840.10008.1.2.1"
	uidCTImage    = "1.2.840.10008.5.1.4.1.1.2"
	// implClassUID names this generator in the file meta (a 2.25 UUID-derived UID).
	implClassUID = "2.25.166262346153018396525396441346375446519"
)

// TemplateCT returns an explicit-VR-little-endian CT slice to copy, cached in
// cacheDir, and says where it came from: the go-dicom example when the module
// can be had (go mod download, through the module proxy or the module cache)
// and dcmconv is installed, else a synthetic phantom written here.
func TemplateCT(ctx context.Context, cacheDir string) (path, source string, err error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", err
	}
	real := filepath.Join(cacheDir, "ct-template-godicom-explicit.dcm")
	if _, err := os.Stat(real); err == nil {
		return real, GoDicomModule + " " + GoDicomExample, nil
	}
	src, derr := ModuleFile(ctx, GoDicomModule, GoDicomExample)
	if derr == nil {
		if conv, cerr := Tool("dcmconv"); cerr == nil {
			tmp := real + ".tmp"
			out, err := exec.CommandContext(ctx, conv, "+te", src, tmp).CombinedOutput()
			if err == nil {
				if err := os.Rename(tmp, real); err != nil {
					return "", "", err
				}
				return real, GoDicomModule + " " + GoDicomExample, nil
			}
			derr = fmt.Errorf("dcmconv +te: %v: %s", err, out)
		} else {
			derr = cerr
		}
	}
	synth := filepath.Join(cacheDir, "ct-template-synthetic.dcm")
	if _, err := os.Stat(synth); err != nil {
		if err := os.WriteFile(synth, SyntheticCT(), 0o644); err != nil {
			return "", "", err
		}
	}
	return synth, "synthetic phantom (go-dicom example unavailable: " + derr.Error() + ")", nil
}

// ModuleFile fetches a pinned module (module@version) with `go mod download
// -json` (run outside any module, so no go.mod changes) and returns the
// path of one of its files in the module cache.
func ModuleFile(ctx context.Context, module, file string) (string, error) {
	goBin, err := Tool("go")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", module)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GO111MODULE=on", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %v: %s %s", module, err, bytes.TrimSpace(out), bytes.TrimSpace(stderr.Bytes()))
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", err
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", module, info.Error)
	}
	p := filepath.Join(info.Dir, filepath.FromSlash(file))
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// generatorVersion changes whenever WriteSeries writes different bytes, so
// cached series from an older generator are rewritten.
const generatorVersion = 1

// Instance is one generated file.
type Instance struct {
	Path           string
	SOPInstanceUID string
	Size           int64
}

// SeriesSpec describes a generated CT series: N copies of Template with new
// UIDs, one study and one series.
type SeriesSpec struct {
	Template string // explicit VR little endian Part 10 file
	Dir      string // owned by the series: emptied when (re)written
	N        int
	Seed     string // same seed, same UIDs
	Prefix   string // file name prefix; default "ct"
}

// seriesManifest is what WriteSeries caches next to the files.
type seriesManifest struct {
	Generator int
	Template  string
	Size      int64
	N         int
	Seed      string
	Instances []Instance
}

// WriteSeries writes the series (or reuses it when Dir already holds the
// same one) and returns its instances in order.
func WriteSeries(spec SeriesSpec) ([]Instance, error) {
	if spec.Prefix == "" {
		spec.Prefix = "ct"
	}
	tst, err := os.Stat(spec.Template)
	if err != nil {
		return nil, err
	}
	// Beside Dir, not in it: storescu +sd Dir must find only DICOM files.
	manPath := filepath.Clean(spec.Dir) + ".manifest.json"
	if b, err := os.ReadFile(manPath); err == nil {
		var m seriesManifest
		if json.Unmarshal(b, &m) == nil && m.Generator == generatorVersion && m.Template == spec.Template && m.Size == tst.Size() &&
			m.N == spec.N && m.Seed == spec.Seed && len(m.Instances) == spec.N && allPresent(m.Instances) {
			return m.Instances, nil
		}
	}
	tmpl, err := os.ReadFile(spec.Template)
	if err != nil {
		return nil, err
	}
	meta, ds, err := splitPart10(tmpl)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", spec.Template, err)
	}
	if ts := metaString(meta, 0x00020010); ts != uidExplicitLE {
		return nil, fmt.Errorf("template %s: transfer syntax %q, want explicit VR little endian", spec.Template, ts)
	}
	base, err := parseElements(ds)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", spec.Template, err)
	}
	sopClass := strings.TrimRight(string(findValue(base, 0x00080016)), "\x00 ")
	if sopClass == "" {
		sopClass = uidCTImage
	}
	// Dir belongs to the series: stale files from another spec would be
	// sent by storescu +sd.
	if err := os.RemoveAll(spec.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return nil, err
	}
	study := seedUID(spec.Seed, "study", 0)
	series := seedUID(spec.Seed, "series", 0)
	frame := seedUID(spec.Seed, "frame", 0)
	width := len(strconv.Itoa(spec.N))
	out := make([]Instance, 0, spec.N)
	for i := range spec.N {
		uid := seedUID(spec.Seed, "instance", i)
		z := -float64(i) * 1.25
		set := map[uint32]element{
			0x00080018: str(0x00080018, "UI", uid),
			0x0020000D: str(0x0020000D, "UI", study),
			0x0020000E: str(0x0020000E, "UI", series),
			0x00200052: str(0x00200052, "UI", frame),
			0x00200013: str(0x00200013, "IS", strconv.Itoa(i+1)),
			0x00200032: str(0x00200032, "DS", "-170\\-170\\"+strconv.FormatFloat(z, 'f', 2, 64)),
			0x00201041: str(0x00201041, "DS", strconv.FormatFloat(z, 'f', 2, 64)),
		}
		// Type 2 attributes the old template lacks: present, empty or fixed.
		for _, e := range []element{
			str(0x00080090, "PN", ""), str(0x00100020, "LO", "RADGATE-BENCH"), str(0x00100030, "DA", ""),
			str(0x00100040, "CS", "O"), str(0x00200010, "SH", "1"), str(0x00200020, "CS", ""),
			str(0x00200060, "CS", ""),
			str(0x00280030, "DS", "0.664062\\0.664062"), str(0x00281053, "DS", "1"),
		} {
			if findValue(base, e.tag) == nil {
				set[e.tag] = e
			}
		}
		var b bytes.Buffer
		writeMeta(&b, sopClass, uid)
		for _, e := range merge(base, set) {
			b.Write(e.encode())
		}
		name := fmt.Sprintf("%s_%0*d.dcm", spec.Prefix, width, i+1)
		p := filepath.Join(spec.Dir, name)
		if err := writeFileAtomic(p, b.Bytes()); err != nil {
			return nil, err
		}
		out = append(out, Instance{Path: p, SOPInstanceUID: uid, Size: int64(b.Len())})
	}
	m, _ := json.MarshalIndent(seriesManifest{Generator: generatorVersion, Template: spec.Template, Size: tst.Size(), N: spec.N, Seed: spec.Seed, Instances: out}, "", " ")
	if err := os.WriteFile(manPath, m, 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

func allPresent(in []Instance) bool {
	for _, it := range in {
		st, err := os.Stat(it.Path)
		if err != nil || st.Size() != it.Size {
			return false
		}
	}
	return true
}

func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := w.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// seedUID derives a UID under 2.25 (PS3.5 B.2: a UUID as a decimal integer)
// from seed, kind and i, so the same spec always gives the same UIDs.
func seedUID(seed, kind string, i int) string {
	h := sha256.Sum256([]byte(seed + "/" + kind + "/" + strconv.Itoa(i)))
	n := new(big.Int).SetBytes(h[:16])
	return "2.25." + n.String()
}

// element is one explicit-VR-little-endian data element.
type element struct {
	tag   uint32
	vr    string
	value []byte // nil with raw set: copied as is (undefined-length items)
	raw   []byte // the whole encoded element, when copied from the template
}

func str(tag uint32, vr, v string) element {
	b := []byte(v)
	if len(b)%2 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	return element{tag: tag, vr: vr, value: b}
}

// longVR are the VRs with a 2-byte reserved field and a 4-byte length
// (PS3.5 7.1.2).
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func (e element) encode() []byte {
	if e.raw != nil {
		return e.raw
	}
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, uint16(e.tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(e.tag))
	b = append(b, e.vr...)
	if longVR(e.vr) {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.value)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.value)))
	}
	return append(b, e.value...)
}

// merge applies set to base (replacing or inserting by tag), drops group
// lengths (retired, and wrong once values change: PS3.5 7.2), cleans
// pre-1993 dates and times ("1999.03.10", "12:16:24"), and keeps tag order.
func merge(base []element, set map[uint32]element) []element {
	out := make([]element, 0, len(base)+len(set))
	for _, e := range base {
		if e.tag&0xffff == 0 {
			continue
		}
		if r, ok := set[e.tag]; ok {
			out = append(out, r)
			continue
		}
		if (e.vr == "DA" || e.vr == "TM") && e.raw != nil {
			v := valueOf(e)
			clean := strings.NewReplacer(".", "", ":", "").Replace(strings.TrimRight(string(v), " "))
			if e.vr == "TM" && strings.Count(string(v), ":") == 0 {
				clean = strings.TrimRight(string(v), " ") // already a DICOM TM (may have a fraction)
			}
			if clean != strings.TrimRight(string(v), " ") {
				out = append(out, str(e.tag, e.vr, clean))
				continue
			}
		}
		out = append(out, e)
	}
	for tag, e := range set {
		if findValue(base, tag) == nil {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b element) int { return cmpTag(a.tag, b.tag) })
	return out
}

func cmpTag(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func valueOf(e element) []byte {
	if e.value != nil || e.raw == nil {
		return e.value
	}
	if longVR(e.vr) {
		return e.raw[12:]
	}
	return e.raw[8:]
}

func findValue(es []element, tag uint32) []byte {
	for _, e := range es {
		if e.tag == tag {
			v := valueOf(e)
			if v == nil {
				v = []byte{}
			}
			return v
		}
	}
	return nil
}

func writeMeta(b *bytes.Buffer, sopClass, sopInstance string) {
	var m bytes.Buffer
	for _, e := range []element{
		{tag: 0x00020001, vr: "OB", value: []byte{0, 1}},
		str(0x00020002, "UI", sopClass),
		str(0x00020003, "UI", sopInstance),
		str(0x00020010, "UI", uidExplicitLE),
		str(0x00020012, "UI", implClassUID),
		str(0x00020013, "SH", "RADGATE_PEERTEST"),
	} {
		m.Write(e.encode())
	}
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	gl := make([]byte, 4)
	binary.LittleEndian.PutUint32(gl, uint32(m.Len()))
	b.Write(element{tag: 0x00020000, vr: "UL", value: gl}.encode())
	b.Write(m.Bytes())
}

// splitPart10 returns the File Meta Information elements and the data set
// bytes of a Part 10 file (PS3.10 7.1).
func splitPart10(b []byte) (meta []element, dataset []byte, err error) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return nil, nil, errors.New("not a DICOM Part 10 file (no DICM at 128)")
	}
	off := 132
	for off+8 <= len(b) {
		if binary.LittleEndian.Uint16(b[off:]) != 0x0002 {
			break
		}
		e, end, err := readElement(b, off)
		if err != nil {
			return nil, nil, fmt.Errorf("file meta: %w", err)
		}
		meta = append(meta, e)
		off = end
	}
	return meta, b[off:], nil
}

// DatasetBytes returns the bytes of a Part 10 file after its File Meta
// Information: the data set exactly as encoded.
func DatasetBytes(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, ds, err := splitPart10(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ds, nil
}

func metaString(meta []element, tag uint32) string {
	return strings.TrimRight(string(findValue(meta, tag)), "\x00 ")
}

// parseElements splits explicit-VR-little-endian data set bytes into
// top-level elements.
func parseElements(b []byte) ([]element, error) {
	var out []element
	for off := 0; off < len(b); {
		e, end, err := readElement(b, off)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		off = end
	}
	return out, nil
}

const undefinedLength = 0xFFFFFFFF

// readElement reads the explicit-VR-little-endian element at off and returns
// it and the offset after it; undefined-length values (sequences,
// encapsulated pixel data) are walked item by item (PS3.5 7.5).
func readElement(b []byte, off int) (element, int, error) {
	if off+8 > len(b) {
		return element{}, 0, fmt.Errorf("element header at %d runs past the end", off)
	}
	tag := uint32(binary.LittleEndian.Uint16(b[off:]))<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:]))
	vr := string(b[off+4 : off+6])
	var length uint32
	hdr := 8
	if longVR(vr) {
		if off+12 > len(b) {
			return element{}, 0, fmt.Errorf("element (%08x) header runs past the end", tag)
		}
		length = binary.LittleEndian.Uint32(b[off+8:])
		hdr = 12
	} else {
		if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
			return element{}, 0, fmt.Errorf("element (%08x) at %d: VR %q is not explicit", tag, off, vr)
		}
		length = uint32(binary.LittleEndian.Uint16(b[off+6:]))
	}
	start := off + hdr
	var end int
	if length == undefinedLength {
		e, err := skipItems(b, start)
		if err != nil {
			return element{}, 0, fmt.Errorf("element (%08x): %w", tag, err)
		}
		end = e
	} else {
		end = start + int(length)
		if end > len(b) {
			return element{}, 0, fmt.Errorf("element (%08x) value of %d bytes runs past the end", tag, length)
		}
	}
	return element{tag: tag, vr: vr, raw: b[off:end]}, end, nil
}

// skipItems walks items from off to the sequence delimitation item and
// returns the offset after it.
func skipItems(b []byte, off int) (int, error) {
	for {
		if off+8 > len(b) {
			return 0, errors.New("sequence runs past the end")
		}
		tag := uint32(binary.LittleEndian.Uint16(b[off:]))<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:]))
		length := binary.LittleEndian.Uint32(b[off+4:])
		off += 8
		switch tag {
		case 0xFFFEE0DD:
			return off, nil
		case 0xFFFEE000:
			if length != undefinedLength {
				off += int(length)
				continue
			}
			for {
				if off+8 > len(b) {
					return 0, errors.New("item runs past the end")
				}
				if binary.LittleEndian.Uint16(b[off:]) == 0xFFFE && binary.LittleEndian.Uint16(b[off+2:]) == 0xE00D {
					off += 8
					break
				}
				_, end, err := readElement(b, off)
				if err != nil {
					return 0, err
				}
				off = end
			}
		default:
			return 0, fmt.Errorf("unexpected tag (%08x) in sequence", tag)
		}
	}
}

// SyntheticCT returns a valid CT Image Storage Part 10 file, explicit VR
// little endian, 512×512 16-bit signed: a water cylinder with a bone ring
// and gentle texture in air. It stands in for the real slice when that
// cannot be had.
func SyntheticCT() []byte {
	const n = 512
	px := make([]byte, n*n*2)
	for y := range n {
		for x := range n {
			dx, dy := float64(x-n/2), float64(y-n/2)
			r := math.Hypot(dx, dy)
			hu := -1000.0
			switch {
			case r < 180:
				hu = 40 + 20*math.Sin(dx/9)*math.Cos(dy/13)
			case r < 200:
				hu = 900
			}
			v := int16(hu + 1024) // stored = HU - intercept
			binary.LittleEndian.PutUint16(px[(y*n+x)*2:], uint16(v))
		}
	}
	us := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	uid := seedUID("synthetic", "instance", 0)
	es := []element{
		str(0x00080005, "CS", "ISO_IR 100"),
		str(0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"),
		str(0x00080016, "UI", uidCTImage),
		str(0x00080018, "UI", uid),
		str(0x00080020, "DA", "20240101"),
		str(0x00080030, "TM", "120000"),
		str(0x00080050, "SH", ""),
		str(0x00080060, "CS", "CT"),
		str(0x00080070, "LO", "radgate peertest"),
		str(0x00080090, "PN", ""),
		str(0x00081030, "LO", "SYNTHETIC CT"),
		str(0x00100010, "PN", "Phantom^CT"),
		str(0x00100020, "LO", "RADGATE-BENCH"),
		str(0x00100030, "DA", ""),
		str(0x00100040, "CS", "O"),
		str(0x00180050, "DS", "1.25"),
		str(0x00180060, "DS", "120"),
		str(0x00185100, "CS", "HFS"),
		str(0x0020000D, "UI", seedUID("synthetic", "study", 0)),
		str(0x0020000E, "UI", seedUID("synthetic", "series", 0)),
		str(0x00200010, "SH", "1"),
		str(0x00200011, "IS", "1"),
		str(0x00200012, "IS", "1"),
		str(0x00200013, "IS", "1"),
		str(0x00200020, "CS", ""),
		str(0x00200032, "DS", "-170\\-170\\0"),
		str(0x00200037, "DS", "1\\0\\0\\0\\1\\0"),
		str(0x00200052, "UI", seedUID("synthetic", "frame", 0)),
		str(0x00200060, "CS", ""),
		str(0x00201040, "LO", ""),
		str(0x00201041, "DS", "0"),
		{tag: 0x00280002, vr: "US", value: us(1)},
		str(0x00280004, "CS", "MONOCHROME2"),
		{tag: 0x00280010, vr: "US", value: us(n)},
		{tag: 0x00280011, vr: "US", value: us(n)},
		str(0x00280030, "DS", "0.664062\\0.664062"),
		{tag: 0x00280100, vr: "US", value: us(16)},
		{tag: 0x00280101, vr: "US", value: us(16)},
		{tag: 0x00280102, vr: "US", value: us(15)},
		{tag: 0x00280103, vr: "US", value: us(1)},
		str(0x00281050, "DS", "40"),
		str(0x00281051, "DS", "400"),
		str(0x00281052, "DS", "-1024"),
		str(0x00281053, "DS", "1"),
		{tag: 0x7FE00010, vr: "OW", value: px},
	}
	var b bytes.Buffer
	writeMeta(&b, uidCTImage, uid)
	for _, e := range es {
		b.Write(e.encode())
	}
	return b.Bytes()
}
