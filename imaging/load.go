package imaging

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// Native (unencapsulated) transfer syntaxes, PS3.5 Annex A.1–A.3, A.5.
const (
	tsImplicitVRLittleEndian = "1.2.840.10008.1.2"
	tsExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	tsDeflatedExplicitVRLE   = "1.2.840.10008.1.2.1.99"
	tsExplicitVRBigEndian    = "1.2.840.10008.1.2.2"
)

// Image is one decoded instance: its identifying and geometry attributes
// and its frames as modality values (after the Modality LUT, PS3.3
// C.11.1: RescaleSlope and RescaleIntercept), plus what preprocessing
// needs. An Image is not modified after Load, so it may be shared between
// goroutines.
type Image struct {
	SOPClassUID, SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID         string
	Modality, BodyPartExamined, PhotometricInterpretation, TransferSyntaxUID string
	// BurnedInAnnotation is (0028,0301) as sent ("YES", "NO" or ""): whether
	// the pixels themselves may carry identifying text (PS3.15 E.1.1).
	BurnedInAnnotation                  string
	Rows, Cols, Frames, SamplesPerPixel int
	InstanceNumber                      int
	// ImagePositionPatient and ImageOrientationPatient (PS3.3 C.7.6.2);
	// HasGeometry is false when either is absent or malformed.
	ImagePositionPatient    [3]float64
	ImageOrientationPatient [6]float64
	HasGeometry             bool
	// PixelSpacing is row spacing, column spacing in mm (zero if absent).
	PixelSpacing [2]float64
	// Window is the instance's first VOI window (PS3.3 C.11.2), if any.
	Window *Window

	// frames holds Rows×Cols modality values per frame; for colour
	// instances the luminance (see Frame).
	frames [][]float32
}

// newImage builds an Image from modality values; tests use it to feed
// Apply and SortSlices synthetic data.
func newImage(rows, cols int, photometric string, frames ...[]float32) *Image {
	return &Image{
		Rows: rows, Cols: cols, Frames: len(frames), SamplesPerPixel: 1,
		PhotometricInterpretation: photometric, frames: frames,
	}
}

// Frame returns a copy of frame i: Rows×Cols modality values, row-major.
// For colour instances (RGB, YBR_FULL, YBR_FULL_422) it returns the
// luminance, Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the same Y as
// PS3.3 C.7.6.3.1.2 YBR_FULL), in the stored sample range, with no
// Modality LUT (it applies to monochrome data only).
func (im *Image) Frame(i int) ([]float32, error) {
	f, err := im.frame(i)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), f...), nil
}

func (im *Image) frame(i int) ([]float32, error) {
	if i < 0 || i >= len(im.frames) {
		return nil, fmt.Errorf("%w: %d of %d", ErrFrame, i, len(im.frames))
	}
	return im.frames[i], nil
}

// LoadFile loads a Part 10 file; see Load.
func LoadFile(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imaging: %w", err)
	}
	defer f.Close()
	im, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

// Load reads one Part 10 stream (at most MaxInstanceBytes) and decodes
// every frame to modality values. Native little/big endian, implicit VR
// and deflated data sets are decoded here; encapsulated pixel data goes
// frame by frame through codec.Decode.
func Load(r io.Reader) (*Image, error) {
	// Size the buffer once when the reader knows its length (a file, a
	// bytes.Reader): a 7.5 MB radiograph then costs one copy, not a series
	// of doublings.
	var b bytes.Buffer
	switch v := r.(type) {
	case interface{ Len() int }:
		b.Grow(min(v.Len(), MaxInstanceBytes) + bytes.MinRead)
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			b.Grow(int(min(fi.Size(), MaxInstanceBytes)) + bytes.MinRead)
		}
	}
	if _, err := b.ReadFrom(io.LimitReader(r, MaxInstanceBytes+1)); err != nil {
		return nil, fmt.Errorf("imaging: read: %w", err)
	}
	buf := b.Bytes()
	if len(buf) > MaxInstanceBytes {
		return nil, fmt.Errorf("%w: stream longer than %d bytes", ErrTooLarge, MaxInstanceBytes)
	}
	ds, err := parse(buf)
	if err != nil {
		return nil, err
	}
	im, layout, err := ds.image()
	if err != nil {
		return nil, err
	}
	if err := im.decodePixels(ds, layout); err != nil {
		return nil, err
	}
	return im, nil
}

// dataset is what parse found: the top-level data set elements, the
// transfer syntax of the stream, and where the Pixel Data element lies.
type dataset struct {
	elems []*dicom.Element
	ts    string
	order binary.ByteOrder
	// buf holds the (inflated) stream; pixel is the top-level Pixel Data
	// element as a byte range of buf, nil when there is none.
	buf   []byte
	pixel *elemRange
}

// elemRange locates an element in a buffer: it starts at start, its header
// is hdr bytes long and vl is its Value Length (0xFFFFFFFF for
// encapsulated Pixel Data, PS3.5 A.4).
type elemRange struct {
	start, hdr int
	vl         uint32
}

// parse runs suyashkumar/dicom over buf, after walker has checked every
// declared length against the bytes present. The library is told to skip
// Pixel Data (it would read native frames one sample per io.ReadFull and
// drop the Basic Offset Table of encapsulated data); walker records where
// the element lies and pixels.go decodes those bytes itself.
//
// The library may panic on hostile input (MustGet* or type assertions on
// values of the wrong type, a nil byte order for an unknown transfer
// syntax ...). This is the only call into it, so the recover here turns
// such a file into ErrCorrupt for that one instance instead of taking down
// the gateway.
func parse(buf []byte) (ds *dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			ds, err = nil, fmt.Errorf("%w: DICOM parser panicked: %v", ErrCorrupt, p)
		}
	}()
	return parseStream(buf, "")
}

// parseStream parses a Part 10 stream. origTS, when set, is the transfer
// syntax of the stream buf was inflated from.
func parseStream(buf []byte, origTS string) (*dataset, error) {
	// PS3.10 7.1: 128-byte preamble, "DICM", then the File Meta Information,
	// explicit VR little endian, led by its group length (0002,0000) UL.
	if len(buf) < 132 || string(buf[128:132]) != "DICM" {
		return nil, fmt.Errorf("%w: no DICM prefix at offset 128", ErrNotDICOM)
	}
	if len(buf) < 144 || binary.LittleEndian.Uint32(buf[132:]) != 0x00000002 || string(buf[136:138]) != "UL" {
		return nil, fmt.Errorf("%w: file meta information does not start with its group length", ErrCorrupt)
	}
	metaEnd := 144 + int64(binary.LittleEndian.Uint32(buf[140:]))
	if metaEnd > int64(len(buf)) {
		return nil, fmt.Errorf("%w: file meta group length %d overruns the stream", ErrCorrupt, metaEnd-144)
	}
	meta := &walker{b: buf, bo: binary.LittleEndian, want: tag.TransferSyntaxUID}
	if _, err := meta.elements(144, int(metaEnd), 0, tag.Tag{}); err != nil {
		return nil, fmt.Errorf("file meta information: %w", err)
	}
	// Without a Transfer Syntax UID the library guesses one by parsing
	// with each syntax (and allocating what it reads): refuse instead.
	if meta.found == nil || meta.found.vl == undefinedLength {
		return nil, fmt.Errorf("%w: file meta information has no Transfer Syntax UID", ErrCorrupt)
	}
	v := buf[meta.found.start+meta.found.hdr:]
	ts := strings.Trim(string(v[:meta.found.vl]), " \x00")
	p, err := dicom.NewParser(bytes.NewReader(buf), int64(len(buf)), nil, dicom.SkipPixelData())
	if err != nil {
		return nil, fmt.Errorf("%w: file meta information: %v", ErrCorrupt, err)
	}
	if ts == tsDeflatedExplicitVRLE {
		return inflate(buf[metaEnd:])
	}
	bo, implicit, err := uid.ParseTransferSyntaxUID(ts)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedTransferSyntax, ts)
	}
	w := &walker{b: buf, bo: bo, implicit: implicit, want: tag.PixelData}
	if _, err := w.elements(int(metaEnd), len(buf), 0, tag.Tag{}); err != nil {
		return nil, err
	}
	if origTS == "" {
		origTS = ts
	}
	ds := &dataset{ts: origTS, order: bo, buf: buf, pixel: w.found}
	for {
		el, err := p.Next()
		if errors.Is(err, dicom.ErrorEndOfDICOM) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		ds.elems = append(ds.elems, el)
	}
	return ds, nil
}

// inflate handles Deflated Explicit VR Little Endian (PS3.5 A.5): the data
// set after the file meta is a raw RFC 1951 stream. It is inflated (at most
// MaxInstanceBytes) and re-framed behind a minimal file meta declaring
// Explicit VR Little Endian, so that the same parse and byte offsets apply.
func inflate(deflated []byte) (*dataset, error) {
	zr := flate.NewReader(bytes.NewReader(deflated))
	defer zr.Close()
	var out bytes.Buffer
	out.Write(explicitLEHeader())
	n, err := io.Copy(&out, io.LimitReader(zr, MaxInstanceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: inflating deflated data set: %v", ErrCorrupt, err)
	}
	if n > MaxInstanceBytes {
		return nil, fmt.Errorf("%w: inflated data set longer than %d bytes", ErrTooLarge, MaxInstanceBytes)
	}
	return parseStream(out.Bytes(), tsDeflatedExplicitVRLE)
}

// explicitLEHeader is a preamble, "DICM" and a file meta group holding only
// the group length and Transfer Syntax UID = Explicit VR Little Endian.
func explicitLEHeader() []byte {
	ts := tsExplicitVRLittleEndian + "\x00" // UI padded to even length with NUL (PS3.5 6.2)
	h := make([]byte, 128, 128+4+12+8+len(ts))
	h = append(h, "DICM"...)
	h = binary.LittleEndian.AppendUint16(h, 0x0002)
	h = binary.LittleEndian.AppendUint16(h, 0x0000)
	h = append(h, "UL"...)
	h = binary.LittleEndian.AppendUint16(h, 4)
	h = binary.LittleEndian.AppendUint32(h, uint32(8+len(ts)))
	h = binary.LittleEndian.AppendUint16(h, 0x0002)
	h = binary.LittleEndian.AppendUint16(h, 0x0010)
	h = append(h, "UI"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(ts)))
	return append(h, ts...)
}

// find returns the top-level element with tag t, or nil.
func find(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

// stringValues returns the string values of t, nil if absent or not strings.
func stringValues(elems []*dicom.Element, t tag.Tag) []string {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return nil
	}
	s, _ := e.Value.GetValue().([]string)
	return s
}

func firstString(elems []*dicom.Element, t tag.Tag) string {
	if s := stringValues(elems, t); len(s) > 0 {
		return strings.TrimSpace(s[0])
	}
	return ""
}

// floats parses the first n values of a DS (or FD/FL) element; ok is false
// if there are fewer than n or one is not a finite number.
func floats(elems []*dicom.Element, t tag.Tag, n int) (v []float64, ok bool) {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return nil, false
	}
	switch x := e.Value.GetValue().(type) {
	case []float64:
		v = x
	case []string:
		for _, s := range x {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, false
			}
			v = append(v, f)
		}
	}
	if len(v) < n {
		return nil, false
	}
	for _, f := range v[:n] {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
	}
	return v[:n], true
}

// integer reads a US/SS/UL (ints) or IS (strings) element.
func integer(elems []*dicom.Element, t tag.Tag) (int, bool) {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return 0, false
	}
	switch x := e.Value.GetValue().(type) {
	case []int:
		if len(x) > 0 {
			return x[0], true
		}
	case []string:
		if len(x) > 0 {
			n, err := strconv.Atoi(strings.TrimSpace(x[0]))
			return n, err == nil
		}
	}
	return 0, false
}

// image reads the identifying, geometry and Image Pixel module attributes
// and checks the declared sizes against the limits, before any pixel
// buffer is allocated.
func (ds *dataset) image() (*Image, *pixelLayout, error) {
	e := ds.elems
	im := &Image{
		SOPClassUID:               firstString(e, tag.SOPClassUID),
		SOPInstanceUID:            firstString(e, tag.SOPInstanceUID),
		SeriesInstanceUID:         firstString(e, tag.SeriesInstanceUID),
		StudyInstanceUID:          firstString(e, tag.StudyInstanceUID),
		Modality:                  firstString(e, tag.Modality),
		BodyPartExamined:          firstString(e, tag.BodyPartExamined),
		PhotometricInterpretation: firstString(e, tag.PhotometricInterpretation),
		BurnedInAnnotation:        strings.ToUpper(strings.TrimSpace(firstString(e, tag.BurnedInAnnotation))),
		TransferSyntaxUID:         ds.ts,
	}
	rows, okR := integer(e, tag.Rows)
	cols, okC := integer(e, tag.Columns)
	if ds.pixel == nil {
		if okR || okC {
			// MR_truncated.dcm: the parser stops "cleanly" at the end of
			// the bytes, and the Image Pixel module has no Pixel Data.
			return nil, nil, fmt.Errorf("%w: Rows/Columns present but Pixel Data missing (truncated?)", ErrCorrupt)
		}
		return nil, nil, ErrNotImage
	}
	if !okR || !okC {
		return nil, nil, fmt.Errorf("%w: Pixel Data without Rows/Columns", ErrCorrupt)
	}
	im.Rows, im.Cols = rows, cols
	im.Frames = 1
	if n, ok := integer(e, tag.NumberOfFrames); ok {
		im.Frames = n
	}
	im.SamplesPerPixel = 1
	if n, ok := integer(e, tag.SamplesPerPixel); ok {
		im.SamplesPerPixel = n
	}
	if rows <= 0 || cols <= 0 || im.Frames <= 0 || im.SamplesPerPixel <= 0 {
		return nil, nil, fmt.Errorf("%w: Rows %d, Columns %d, NumberOfFrames %d, SamplesPerPixel %d",
			ErrCorrupt, rows, cols, im.Frames, im.SamplesPerPixel)
	}
	if rows > MaxDimension || cols > MaxDimension || im.Frames > MaxFrames ||
		rows*cols*im.Frames > MaxPixels {
		return nil, nil, fmt.Errorf("%w: %d×%d×%d frames (limits %d, %d frames, %d pixels)",
			ErrTooLarge, rows, cols, im.Frames, MaxDimension, MaxFrames, MaxPixels)
	}
	im.InstanceNumber, _ = integer(e, tag.InstanceNumber)
	if v, ok := floats(e, tag.ImagePositionPatient, 3); ok {
		if o, ok := floats(e, tag.ImageOrientationPatient, 6); ok {
			copy(im.ImagePositionPatient[:], v)
			copy(im.ImageOrientationPatient[:], o)
			im.HasGeometry = true
		}
	}
	if v, ok := floats(e, tag.PixelSpacing, 2); ok {
		copy(im.PixelSpacing[:], v)
	}
	c, okc := floats(e, tag.WindowCenter, 1)
	w, okw := floats(e, tag.WindowWidth, 1)
	if okc && okw && w[0] >= 1 { // PS3.3 C.11.2.1.2: Window Width >= 1
		im.Window = &Window{Center: c[0], Width: w[0]}
	}
	l, err := ds.layout(im)
	if err != nil {
		return nil, nil, err
	}
	return im, l, nil
}
