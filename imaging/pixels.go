package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/radgate/radgate/imaging/codec"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// pixelLayout is the Image Pixel module (PS3.3 C.7.6.3) plus the Modality
// LUT (C.11.1) of one instance: how to turn stored samples into values.
type pixelLayout struct {
	rows, cols, spp                int
	bitsAlloc, bitsStored, highBit int
	signed                         bool
	planar                         int // PlanarConfiguration: 0 interleaved, 1 colour-by-plane
	photometric                    string
	slope, intercept               float64
}

// layout reads and checks the pixel description of im's data set.
func (ds *dataset) layout(im *Image) (*pixelLayout, error) {
	e := ds.elems
	l := &pixelLayout{rows: im.Rows, cols: im.Cols, spp: im.SamplesPerPixel,
		photometric: im.PhotometricInterpretation, slope: 1}
	var ok bool
	if l.bitsAlloc, ok = integer(e, tag.BitsAllocated); !ok {
		return nil, fmt.Errorf("%w: no BitsAllocated", ErrCorrupt)
	}
	if l.bitsAlloc != 1 && l.bitsAlloc != 8 && l.bitsAlloc != 16 && l.bitsAlloc != 32 {
		return nil, fmt.Errorf("%w: BitsAllocated %d", ErrUnsupportedPixelFormat, l.bitsAlloc)
	}
	if l.bitsStored, ok = integer(e, tag.BitsStored); !ok {
		l.bitsStored = l.bitsAlloc
	}
	if l.highBit, ok = integer(e, tag.HighBit); !ok {
		l.highBit = l.bitsStored - 1
	}
	// PS3.5 8.1.1: the stored bits are contiguous, HighBit the most
	// significant, inside the allocated cell.
	if l.bitsStored < 1 || l.bitsStored > l.bitsAlloc || l.highBit < l.bitsStored-1 || l.highBit >= l.bitsAlloc {
		return nil, fmt.Errorf("%w: BitsAllocated %d, BitsStored %d, HighBit %d",
			ErrCorrupt, l.bitsAlloc, l.bitsStored, l.highBit)
	}
	rep, _ := integer(e, tag.PixelRepresentation)
	l.signed = rep == 1
	l.planar, _ = integer(e, tag.PlanarConfiguration)
	switch l.photometric {
	case "MONOCHROME1", "MONOCHROME2":
		if l.spp != 1 {
			return nil, fmt.Errorf("%w: %s with SamplesPerPixel %d", ErrCorrupt, l.photometric, l.spp)
		}
	case "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420":
		if l.spp != 3 || l.bitsAlloc == 1 {
			return nil, fmt.Errorf("%w: %s with SamplesPerPixel %d", ErrCorrupt, l.photometric, l.spp)
		}
	default:
		return nil, fmt.Errorf("%w: PhotometricInterpretation %q", ErrUnsupportedPixelFormat, l.photometric)
	}
	if v, ok := floats(e, tag.RescaleSlope, 1); ok {
		l.slope = v[0]
	}
	if v, ok := floats(e, tag.RescaleIntercept, 1); ok {
		l.intercept = v[0]
	}
	if find(e, tag.RescaleSlope) == nil && find(e, tag.ModalityLUTSequence) != nil {
		return nil, fmt.Errorf("%w: Modality LUT Sequence", ErrUnsupportedPixelFormat)
	}
	return l, nil
}

// nativeLen is the byte length of n native frames. Uncompressed
// YBR_FULL_422 stores two samples per pixel: Y1 Y2 Cb Cr for each pair of
// pixels (PS3.3 C.7.6.3.1.2). With BitsAllocated 1 frames are packed with
// no padding between them (PS3.5 8.1.1, 8.2).
func (l *pixelLayout) nativeLen(n int) int {
	samples := l.rows * l.cols * l.spp
	if l.photometric == "YBR_FULL_422" {
		samples = l.rows * l.cols * 2
	}
	return (n*samples*l.bitsAlloc + 7) / 8
}

// decodePixels fills im.frames from the Pixel Data element.
func (im *Image) decodePixels(ds *dataset, l *pixelLayout) error {
	px := ds.pixel
	body := ds.buf[px.start+px.hdr:]
	im.frames = make([][]float32, im.Frames)
	switch ds.ts {
	case tsImplicitVRLittleEndian, tsExplicitVRLittleEndian, tsDeflatedExplicitVRLE, tsExplicitVRBigEndian:
		if px.vl == undefinedLength {
			return fmt.Errorf("%w: encapsulated Pixel Data in native transfer syntax %s", ErrCorrupt, ds.ts)
		}
		if int64(px.vl) > int64(len(body)) {
			return fmt.Errorf("%w: Pixel Data length %d beyond the end of the stream", ErrCorrupt, px.vl)
		}
		value := body[:px.vl]
		// PS3.5 A.1 pads the value to even length; some writers pad more
		// (pydicom's MR_small_padded.dcm): trailing bytes short of one more
		// frame are ignored, as pydicom does.
		if need := l.nativeLen(im.Frames); len(value) < need || len(value) >= max(need+2, l.nativeLen(im.Frames+1)) {
			return fmt.Errorf("%w: Pixel Data is %d bytes, %d frames of %d×%d×%d at %d bits need %d",
				ErrCorrupt, len(value), im.Frames, l.rows, l.cols, l.spp, l.bitsAlloc, need)
		}
		for i := range im.frames {
			im.frames[i] = make([]float32, l.rows*l.cols)
			if l.bitsAlloc == 1 {
				l.unpackBits(value, i, im.frames[i])
				continue
			}
			n := l.nativeLen(1)
			l.convert(value[i*n:(i+1)*n], ds.order, l.photometric == "YBR_FULL_422", im.frames[i])
		}
		return nil
	}
	if px.vl != undefinedLength {
		return fmt.Errorf("%w: native Pixel Data in encapsulated transfer syntax %s", ErrCorrupt, ds.ts)
	}
	if l.bitsAlloc == 1 {
		return fmt.Errorf("%w: BitsAllocated 1 in encapsulated transfer syntax %s", ErrUnsupportedPixelFormat, ds.ts)
	}
	frames, err := encapsulatedFrames(body, im.Frames)
	if err != nil {
		return err
	}
	p := codec.Params{Rows: l.rows, Cols: l.cols, SamplesPerPixel: l.spp, BitsAllocated: l.bitsAlloc,
		BitsStored: l.bitsStored, PixelRepresentation: btoi(l.signed), PhotometricInterpretation: l.photometric}
	want := l.rows * l.cols * l.spp * l.bitsAlloc / 8 // codec.Frame: interleaved, full resolution
	for i, data := range frames {
		f, err := codec.Decode(ds.ts, data, p)
		if errors.Is(err, codec.ErrUnsupported) {
			return fmt.Errorf("%w: %s, frame %d: %w", ErrUnsupportedTransferSyntax, ds.ts, i, err)
		}
		if err != nil {
			return fmt.Errorf("%w: %s, frame %d: %w", ErrCorrupt, ds.ts, i, err)
		}
		if len(f.Pixels) != want {
			return fmt.Errorf("%w: %s, frame %d decoded to %d bytes, want %d", ErrCorrupt, ds.ts, i, len(f.Pixels), want)
		}
		// Codec output is little endian and interleaved (codec.Frame), in
		// the colour space the decoder reports.
		fl := *l
		fl.planar = 0
		if f.PhotometricInterpretation != "" {
			fl.photometric = f.PhotometricInterpretation
		}
		im.frames[i] = make([]float32, l.rows*l.cols)
		fl.convert(f.Pixels, binary.LittleEndian, false, im.frames[i])
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// convert turns one frame of stored samples into modality values (for
// monochrome) or luminance (colour); see Image.Frame. src holds exactly one
// frame; sub422 selects the uncompressed YBR_FULL_422 layout.
func (l *pixelLayout) convert(src []byte, order binary.ByteOrder, sub422 bool, dst []float32) {
	shift := uint(l.highBit + 1 - l.bitsStored)
	mask := uint32(1<<uint(l.bitsStored) - 1)
	ext := uint(32 - l.bitsStored)
	big := order == binary.BigEndian
	nb := l.bitsAlloc / 8
	// sample returns stored sample i: the BitsStored bits ending at HighBit,
	// sign-extended from BitsStored when PixelRepresentation is 1 (PS3.5
	// 8.1.1, PS3.3 C.7.6.3.1.3: a 12-bit signed value in a 16-bit cell).
	sample := func(i int) float64 {
		var u uint32
		switch {
		case nb == 1:
			u = uint32(src[i])
		case nb == 2 && big:
			u = uint32(src[2*i])<<8 | uint32(src[2*i+1])
		case nb == 2:
			u = uint32(src[2*i]) | uint32(src[2*i+1])<<8
		case big:
			u = binary.BigEndian.Uint32(src[4*i:])
		default:
			u = binary.LittleEndian.Uint32(src[4*i:])
		}
		u = u >> shift & mask
		if l.signed {
			return float64(int32(u<<ext) >> ext)
		}
		return float64(u)
	}
	n := l.rows * l.cols
	switch {
	case l.spp == 1:
		for i := range n {
			dst[i] = float32(sample(i)*l.slope + l.intercept)
		}
	case sub422:
		for i := range n {
			dst[i] = float32(sample(4*(i/2) + i%2))
		}
	case l.photometric == "RGB":
		// Sample c of pixel i: interleaved R1 G1 B1 R2 ..., or by plane.
		at := func(i, c int) float64 { return sample(3*i + c) }
		if l.planar == 1 {
			at = func(i, c int) float64 { return sample(c*n + i) }
		}
		for i := range n {
			dst[i] = float32(0.299*at(i, 0) + 0.587*at(i, 1) + 0.114*at(i, 2))
		}
	default: // YBR_*: the first component is the luminance
		for i := range n {
			if l.planar == 1 {
				dst[i] = float32(sample(i))
			} else {
				dst[i] = float32(sample(3 * i))
			}
		}
	}
}

// unpackBits decodes frame f of BitsAllocated 1 data (segmentations,
// PS3.3 C.8.20.2): pixel k of the instance is bit k%8 (least significant
// first) of byte k/8, frames following each other without padding.
func (l *pixelLayout) unpackBits(value []byte, f int, dst []float32) {
	n := l.rows * l.cols
	for i := range n {
		k := f*n + i
		dst[i] = float32(float64(value[k/8]>>(k%8)&1)*l.slope + l.intercept)
	}
}

// undefinedLength is the Value Length of encapsulated Pixel Data (PS3.5 7.1.1).
const undefinedLength = 0xFFFFFFFF

// Item tags of encapsulated pixel data, PS3.5 A.4 (group FFFE, little endian).
const (
	itemTag         = 0xE000FFFE
	seqDelimiterTag = 0xE0DDFFFE
)

// fragment is one Item of encapsulated Pixel Data; off is the offset of
// its Item tag from the first fragment's Item tag, the origin of the Basic
// Offset Table (PS3.5 A.4).
type fragment struct {
	off  int
	data []byte
}

// encapsulatedFrames splits the value of encapsulated Pixel Data (Basic
// Offset Table item, fragment items, sequence delimiter; PS3.5 A.4) into
// the bytes of each of n frames.
func encapsulatedFrames(body []byte, n int) ([][]byte, error) {
	var bot []uint32
	var frags []fragment
	first := -1
	for off := 0; ; {
		if len(body)-off < 8 {
			return nil, fmt.Errorf("%w: encapsulated Pixel Data ends without a Sequence Delimitation Item", ErrCorrupt)
		}
		t := binary.LittleEndian.Uint32(body[off:])
		vl := binary.LittleEndian.Uint32(body[off+4:])
		if t == seqDelimiterTag {
			break
		}
		if t != itemTag || vl == undefinedLength || int64(vl) > int64(len(body)-off-8) {
			return nil, fmt.Errorf("%w: bad or truncated item (tag %08x, length %d) at Pixel Data offset %d",
				ErrCorrupt, t, vl, off)
		}
		data := body[off+8 : off+8+int(vl)]
		switch {
		case first < 0 && bot == nil:
			if vl%4 != 0 {
				return nil, fmt.Errorf("%w: Basic Offset Table length %d", ErrCorrupt, vl)
			}
			bot = make([]uint32, 0, vl/4)
			for i := 0; i < len(data); i += 4 {
				bot = append(bot, binary.LittleEndian.Uint32(data[i:]))
			}
			first = off + 8 + int(vl)
		default:
			frags = append(frags, fragment{off: off - first, data: data})
		}
		off += 8 + int(vl)
	}
	if len(frags) == 0 {
		return nil, fmt.Errorf("%w: encapsulated Pixel Data has no fragments", ErrCorrupt)
	}
	groups, err := groupFragments(frags, bot, n)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(groups))
	for i, g := range groups {
		if len(g) == 1 {
			out[i] = g[0].data
			continue
		}
		var b bytes.Buffer
		for _, f := range g {
			b.Write(f.data)
		}
		out[i] = b.Bytes()
	}
	return out, nil
}

// groupFragments assigns fragments to frames (PS3.5 A.4): one frame takes
// all fragments; else the Basic Offset Table gives each frame's first
// fragment; else one fragment per frame when the counts agree; else a
// fragment that opens a JPEG (SOI, ITU T.81 B.1.1.3) or JPEG 2000 (SOC
// SIZ, ITU T.800 A.4.1) code stream starts a frame.
func groupFragments(frags []fragment, bot []uint32, n int) ([][]fragment, error) {
	switch {
	case n == 1:
		return [][]fragment{frags}, nil
	case len(bot) > 0:
		if len(bot) != n {
			return nil, fmt.Errorf("%w: Basic Offset Table has %d entries for %d frames", ErrCorrupt, len(bot), n)
		}
		groups := make([][]fragment, 0, n)
		j := 0
		for i, o := range bot {
			if j >= len(frags) || frags[j].off != int(o) {
				return nil, fmt.Errorf("%w: Basic Offset Table entry %d (%d) is not a fragment start", ErrCorrupt, i, o)
			}
			k := j + 1
			for k < len(frags) && (i+1 == n || frags[k].off < int(bot[i+1])) {
				k++
			}
			groups = append(groups, frags[j:k])
			j = k
		}
		return groups, nil
	case len(frags) == n:
		groups := make([][]fragment, n)
		for i := range frags {
			groups[i] = frags[i : i+1]
		}
		return groups, nil
	}
	var groups [][]fragment
	for i, f := range frags {
		d := f.data
		soi := len(d) >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF
		soc := len(d) >= 4 && d[0] == 0xFF && d[1] == 0x4F && d[2] == 0xFF && d[3] == 0x51
		switch {
		case soi || soc || i == 0:
			groups = append(groups, frags[i:i+1])
		default:
			groups[len(groups)-1] = frags[i-len(groups[len(groups)-1]) : i+1]
		}
	}
	if len(groups) != n {
		return nil, fmt.Errorf("%w: %d fragments, %d frames and no Basic Offset Table: frame boundaries unknown",
			ErrCorrupt, len(frags), n)
	}
	return groups, nil
}
