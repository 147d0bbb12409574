package codec

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// This file is a decoder for the JPEG processes DICOM uses (PS3.5 8.2.1,
// 8.2.2, 10.4 and Annex A.4.1): ITU-T T.81 Huffman-coded sequential DCT at
// 8 and 12 bits (processes 1, 2 and 4) and lossless (process 14, all seven
// predictors). Progressive, hierarchical and arithmetic-coded streams are
// reported as ErrUnsupported. The inverse DCT, chroma upsampling and colour
// conversion follow the IJG library (jidctint.c "islow", jdsample.c "fancy"
// upsampling, jdcolor.c) arithmetically, because that is what dcmtk and
// most viewers produce.

// JPEG markers (T.81 Table B.1).
const (
	mSOF0 = 0xC0 // baseline DCT
	mSOF1 = 0xC1 // extended sequential DCT, Huffman
	mSOF2 = 0xC2 // progressive DCT, Huffman
	mSOF3 = 0xC3 // lossless, Huffman
	mDHT  = 0xC4
	mRST0 = 0xD0
	mSOI  = 0xD8
	mEOI  = 0xD9
	mSOS  = 0xDA
	mDQT  = 0xDB
	mDNL  = 0xDC
	mDRI  = 0xDD
	mAPP0 = 0xE0
	mAPPE = 0xEE // Adobe
)

// jpegMaxComponents is the most components a frame may have here: DICOM
// JPEG images have 1 or 3 samples per pixel (PS3.5 8.2.1).
const jpegMaxComponents = 3

// zigzag maps the zig-zag sequence index to the natural (row-major) index
// of a coefficient in an 8×8 block (T.81 Figure A.6).
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// huffTable is one Huffman table (T.81 B.2.4.2, decoded per F.2.2.3 with
// an 8-bit look-ahead for the common short codes).
type huffTable struct {
	defined bool
	fast    [256]uint16 // code of ≤8 bits prefixing the index: len<<8 | value; 0 = longer code
	maxcode [17]int32   // largest code of each length, -1 if none
	valptr  [17]int32   // index in vals of the first code of each length
	mincode [17]int32
	vals    [256]byte
}

func (h *huffTable) build(counts [16]int, vals []byte) error {
	*h = huffTable{defined: true}
	copy(h.vals[:], vals)
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.valptr[l], h.mincode[l] = k, code
		code += n
		k += n
		// The codes of length l must fit in l bits (C.2).
		if code > 1<<l {
			return fmt.Errorf("%w: jpeg: Huffman table over-subscribed at length %d", ErrCorrupt, l)
		}
		h.maxcode[l] = code - 1
		if n == 0 {
			h.maxcode[l] = -1
		}
		if l <= 8 {
			for c := h.mincode[l]; c < code; c++ {
				entry := uint16(l)<<8 | uint16(h.vals[h.valptr[l]+c-h.mincode[l]])
				lo := c << (8 - l)
				for j := int32(0); j < 1<<(8-l); j++ {
					h.fast[lo+j] = entry
				}
			}
		}
		code <<= 1
	}
	return nil
}

// bitReader reads entropy-coded data (T.81 F.1.2.3): it removes the stuffed
// zero after each 0xFF and stops at the first marker. Past that point it
// supplies zero bits so look-ahead works, but consuming any of them is an
// error: the segment is shorter than the coded data claims.
type bitReader struct {
	data   []byte
	pos    int    // next byte of data to load
	acc    uint64 // bits, the next one at bit n-1
	n      uint   // bits in acc
	pad    uint   // of those, zero bits supplied past the segment end
	marker bool   // pos is at a marker (or the end of data)
}

func (r *bitReader) fill() {
	for r.n <= 56 {
		var b byte
		switch {
		case r.marker || r.pos >= len(r.data):
			r.marker = true
			r.pad += 8
		case r.data[r.pos] != 0xFF:
			b = r.data[r.pos]
			r.pos++
		case r.pos+1 < len(r.data) && r.data[r.pos+1] == 0x00:
			b = 0xFF
			r.pos += 2
		default:
			r.marker = true
			r.pad += 8
		}
		r.acc = r.acc<<8 | uint64(b)
		r.n += 8
	}
}

// bits returns the next k (≤16) bits.
func (r *bitReader) bits(k uint) (uint32, error) {
	if r.n < k {
		r.fill()
	}
	if k > r.n-r.pad {
		return 0, fmt.Errorf("%w: jpeg: entropy-coded segment ends early", ErrCorrupt)
	}
	r.n -= k
	return uint32(r.acc>>r.n) & (1<<k - 1), nil
}

// decodeHuff decodes one Huffman-coded value (T.81 F.2.2.3).
func (r *bitReader) decodeHuff(h *huffTable) (byte, error) {
	if r.n < 16 {
		r.fill()
	}
	peek := uint32(r.acc>>(r.n-16)) & 0xFFFF
	var l uint
	var v byte
	if e := h.fast[peek>>8]; e != 0 {
		l, v = uint(e>>8), byte(e)
	} else {
		l = 9
		for int32(peek>>(16-l)) > h.maxcode[l] {
			l++
			if l > 16 {
				return 0, fmt.Errorf("%w: jpeg: invalid Huffman code", ErrCorrupt)
			}
		}
		code := int32(peek >> (16 - l))
		idx := h.valptr[l] + code - h.mincode[l]
		if idx < 0 || idx > 255 {
			return 0, fmt.Errorf("%w: jpeg: invalid Huffman code", ErrCorrupt)
		}
		v = h.vals[idx]
	}
	if l > r.n-r.pad {
		return 0, fmt.Errorf("%w: jpeg: entropy-coded segment ends early", ErrCorrupt)
	}
	r.n -= l
	return v, nil
}

// receiveExtend reads an s-bit magnitude and extends its sign (T.81
// F.2.2.1, Figure F.12).
func (r *bitReader) receiveExtend(s byte) (int32, error) {
	if s == 0 {
		return 0, nil
	}
	if s > 16 {
		return 0, fmt.Errorf("%w: jpeg: magnitude category %d", ErrCorrupt, s)
	}
	v, err := r.bits(uint(s))
	if err != nil {
		return 0, err
	}
	x := int32(v)
	if x < 1<<(s-1) {
		x -= 1<<s - 1
	}
	return x, nil
}

// restart consumes the RSTm marker expected after a restart interval (T.81
// E.2.4, F.2.1.3.1), discarding the padding bits before it.
func (r *bitReader) restart(m int) error {
	r.acc, r.n, r.pad = 0, 0, 0
	want := byte(mRST0 + m%8)
	if r.pos+1 >= len(r.data) || r.data[r.pos] != 0xFF || r.data[r.pos+1] != want {
		return fmt.Errorf("%w: jpeg: restart marker RST%d missing at offset %d", ErrCorrupt, m%8, r.pos)
	}
	r.pos += 2
	r.marker = false
	return nil
}

type jpegComponent struct {
	id     byte
	h, v   int // sampling factors
	tq     int // quantisation table
	td, ta int // Huffman tables of the current scan
	// Decoded samples, rows stride apart: for DCT the MCU-padded extent
	// (T.81 A.2.4), for lossless the component's own width×height.
	stride  int
	samples []uint16
	pred    int32 // DC predictor (F.2.1.3.1)
	scanned bool
}

// jpegDecoder holds the state of one JPEG stream.
type jpegDecoder struct {
	p         Params
	streamLen int  // bytes of the whole stream
	sof       byte // frame marker: mSOF0, mSOF1 or mSOF3
	precision int
	width     int
	height    int
	comps     []jpegComponent
	hmax      int
	vmax      int
	mcusX     int
	mcusY     int
	quant     [4][64]int32 // natural order
	qdefined  [4]bool
	dc, ac    [4]huffTable
	restart   int // restart interval in MCUs (B.2.4.4)
	jfif      bool
	pt        uint // lossless point transform (H.1.2.1)
	adobe     bool
	transform byte // Adobe APP14 colour transform: 0 none, 1 YCbCr
}

// decodeJPEG decodes one frame of JPEG Baseline, Extended or Lossless
// (PS3.5 A.4.1).
func decodeJPEG(data []byte, p Params) (Frame, error) {
	d := &jpegDecoder{p: p}
	if err := d.decode(data); err != nil {
		return Frame{}, err
	}
	return d.output()
}

func (d *jpegDecoder) decode(data []byte) error {
	d.streamLen = len(data)
	if len(data) < 2 || data[0] != 0xFF || data[1] != mSOI {
		return fmt.Errorf("%w: jpeg: no SOI marker", ErrCorrupt)
	}
	pos := 2
	for {
		// Markers may be preceded by any number of 0xFF fill bytes (B.1.1.2).
		if pos >= len(data) {
			// A missing EOI is tolerated once every component is decoded.
			return d.complete()
		}
		if data[pos] != 0xFF {
			return fmt.Errorf("%w: jpeg: expected a marker at offset %d", ErrCorrupt, pos)
		}
		for pos < len(data) && data[pos] == 0xFF {
			pos++
		}
		if pos >= len(data) {
			return d.complete()
		}
		m := data[pos]
		pos++
		if m == mEOI {
			return d.complete()
		}
		if m == 0x01 || (m >= mRST0 && m <= mRST0+7) {
			continue // TEM and stray RSTn carry no length (B.1.1.3)
		}
		if pos+2 > len(data) {
			return fmt.Errorf("%w: jpeg: marker %02X has no length", ErrCorrupt, m)
		}
		segLen := int(binary.BigEndian.Uint16(data[pos:]))
		if segLen < 2 || pos+segLen > len(data) {
			return fmt.Errorf("%w: jpeg: marker %02X segment length %d passes the end", ErrCorrupt, m, segLen)
		}
		seg := data[pos+2 : pos+segLen]
		pos += segLen
		var err error
		switch {
		case m == mSOF0 || m == mSOF1 || m == mSOF3:
			err = d.parseSOF(m, seg)
		case m == mSOF2:
			err = fmt.Errorf("%w: jpeg: progressive DCT (SOF2) is not decoded", ErrUnsupported)
		case m >= 0xC5 && m <= 0xCF && m != 0xC8 && m != 0xCC:
			err = fmt.Errorf("%w: jpeg: SOF%d (hierarchical or arithmetic coding) is not decoded", ErrUnsupported, m-mSOF0)
		case m == mDHT:
			err = d.parseDHT(seg)
		case m == mDQT:
			err = d.parseDQT(seg)
		case m == mDRI:
			if len(seg) != 2 {
				err = fmt.Errorf("%w: jpeg: DRI length %d", ErrCorrupt, len(seg))
				break
			}
			d.restart = int(binary.BigEndian.Uint16(seg))
		case m == mDNL:
			err = fmt.Errorf("%w: jpeg: DNL marker (height defined after the scan)", ErrUnsupported)
		case m == mAPP0:
			d.jfif = d.jfif || strings.HasPrefix(string(seg), "JFIF\x00")
		case m == mAPPE:
			// Adobe APP14 (Adobe TN 5116): "Adobe", version, flags0,
			// flags1, transform.
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				d.adobe, d.transform = true, seg[11]
			}
		case m == mSOS:
			pos, err = d.scan(seg, data, pos)
		}
		// Other APPn, COM and JPG/JPGn segments are skipped.
		if err != nil {
			return err
		}
	}
}

// parseSOF reads the frame header (T.81 B.2.2) and checks it against the
// Image Pixel module before allocating the component planes.
func (d *jpegDecoder) parseSOF(m byte, seg []byte) error {
	if d.comps != nil {
		return fmt.Errorf("%w: jpeg: second frame header", ErrCorrupt)
	}
	if len(seg) < 6 {
		return fmt.Errorf("%w: jpeg: SOF length %d", ErrCorrupt, len(seg))
	}
	d.sof, d.precision = m, int(seg[0])
	d.height = int(binary.BigEndian.Uint16(seg[1:]))
	d.width = int(binary.BigEndian.Uint16(seg[3:]))
	nf := int(seg[5])
	switch {
	case m == mSOF3 && (d.precision < 2 || d.precision > 16):
		return fmt.Errorf("%w: jpeg: lossless precision %d", ErrCorrupt, d.precision)
	case m == mSOF0 && d.precision != 8, m == mSOF1 && d.precision != 8 && d.precision != 12:
		return fmt.Errorf("%w: jpeg: DCT precision %d", ErrCorrupt, d.precision)
	case d.precision > d.p.BitsAllocated:
		return fmt.Errorf("%w: jpeg: %d-bit samples do not fit bits allocated %d", ErrCorrupt, d.precision, d.p.BitsAllocated)
	case d.height == 0:
		return fmt.Errorf("%w: jpeg: height defined by DNL", ErrUnsupported)
	case d.width != d.p.Cols || d.height != d.p.Rows:
		return fmt.Errorf("%w: jpeg: frame is %d×%d, data set declares %d×%d", ErrCorrupt, d.width, d.height, d.p.Cols, d.p.Rows)
	case nf != d.p.SamplesPerPixel || nf > jpegMaxComponents:
		return fmt.Errorf("%w: jpeg: %d components, data set declares %d samples per pixel", ErrCorrupt, nf, d.p.SamplesPerPixel)
	case len(seg) != 6+3*nf:
		return fmt.Errorf("%w: jpeg: SOF length %d for %d components", ErrCorrupt, len(seg), nf)
	}
	d.comps = make([]jpegComponent, nf)
	d.hmax, d.vmax = 1, 1
	for i := range d.comps {
		c := &d.comps[i]
		c.id, c.h, c.v, c.tq = seg[6+3*i], int(seg[7+3*i]>>4), int(seg[7+3*i]&15), int(seg[8+3*i])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return fmt.Errorf("%w: jpeg: component %d sampling %d×%d, table %d", ErrCorrupt, c.id, c.h, c.v, c.tq)
		}
		if m == mSOF3 && (c.h != 1 || c.v != 1) {
			return fmt.Errorf("%w: jpeg: subsampled lossless components", ErrUnsupported)
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	// Before allocating, check the stream can hold the frame at all: every
	// Huffman code is at least one bit, a lossless sample takes one code
	// (H.1.2.2) and a DCT block at least two, DC and EOB (F.1.2).
	minBits := d.width * d.height * nf
	if m == mSOF3 {
		if 8*d.streamLen < minBits {
			return fmt.Errorf("%w: jpeg: %d bytes cannot code %d lossless samples", ErrCorrupt, d.streamLen, minBits)
		}
		for i := range d.comps {
			c := &d.comps[i]
			c.stride = d.width
			c.samples = make([]uint16, d.width*d.height)
		}
		return nil
	}
	if 8*d.streamLen < 2*minBits/64 {
		return fmt.Errorf("%w: jpeg: %d bytes cannot code %d DCT blocks", ErrCorrupt, d.streamLen, minBits/64)
	}
	// A.2.4: an interleaved MCU covers 8·Hmax × 8·Vmax samples.
	d.mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for i := range d.comps {
		c := &d.comps[i]
		if d.hmax%c.h != 0 || d.vmax%c.v != 0 {
			return fmt.Errorf("%w: jpeg: sampling factors %d×%d of %d×%d", ErrUnsupported, c.h, c.v, d.hmax, d.vmax)
		}
		c.stride = d.mcusX * c.h * 8
		c.samples = make([]uint16, c.stride*d.mcusY*c.v*8)
	}
	return nil
}

// parseDHT reads Huffman tables (T.81 B.2.4.2).
func (d *jpegDecoder) parseDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return fmt.Errorf("%w: jpeg: DHT truncated", ErrCorrupt)
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > 1 || th > 3 {
			return fmt.Errorf("%w: jpeg: DHT class %d id %d", ErrCorrupt, tc, th)
		}
		var counts [16]int
		total := 0
		for i := range counts {
			counts[i] = int(seg[1+i])
			total += counts[i]
		}
		if total > 256 || len(seg) < 17+total {
			return fmt.Errorf("%w: jpeg: DHT declares %d codes", ErrCorrupt, total)
		}
		t := &d.dc[th]
		if tc == 1 {
			t = &d.ac[th]
		}
		if err := t.build(counts, seg[17:17+total]); err != nil {
			return err
		}
		seg = seg[17+total:]
	}
	return nil
}

// parseDQT reads quantisation tables (T.81 B.2.4.1), stored dezigzagged.
func (d *jpegDecoder) parseDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&15
		n := 64 * (1 + int(pq))
		if pq > 1 || tq > 3 || len(seg) < 1+n {
			return fmt.Errorf("%w: jpeg: DQT precision %d id %d length %d", ErrCorrupt, pq, tq, len(seg))
		}
		for k := 0; k < 64; k++ {
			q := int32(seg[1+k])
			if pq == 1 {
				q = int32(binary.BigEndian.Uint16(seg[1+2*k:]))
			}
			d.quant[tq][zigzag[k]] = q
		}
		d.qdefined[tq] = true
		seg = seg[1+n:]
	}
	return nil
}

// scan reads a scan header (T.81 B.2.3) and decodes the entropy-coded
// data after it, returning the offset of the next marker.
func (d *jpegDecoder) scan(seg, data []byte, pos int) (int, error) {
	if d.comps == nil {
		return 0, fmt.Errorf("%w: jpeg: scan before frame header", ErrCorrupt)
	}
	if len(seg) < 1 {
		return 0, fmt.Errorf("%w: jpeg: empty SOS", ErrCorrupt)
	}
	ns := int(seg[0])
	if ns < 1 || ns > len(d.comps) || len(seg) != 4+2*ns {
		return 0, fmt.Errorf("%w: jpeg: SOS with %d components, length %d", ErrCorrupt, ns, len(seg))
	}
	sc := make([]*jpegComponent, ns)
	for i := range sc {
		id, tables := seg[1+2*i], seg[2+2*i]
		for j := range d.comps {
			if d.comps[j].id == id {
				sc[i] = &d.comps[j]
			}
		}
		if sc[i] == nil {
			return 0, fmt.Errorf("%w: jpeg: scan names unknown component %d", ErrCorrupt, id)
		}
		if sc[i].scanned {
			return 0, fmt.Errorf("%w: jpeg: component %d scanned twice", ErrCorrupt, id)
		}
		c := sc[i]
		c.scanned, c.td, c.ta, c.pred = true, int(tables>>4), int(tables&15), 0
		if c.td > 3 || c.ta > 3 || !d.dc[c.td].defined || (d.sof != mSOF3 && !d.ac[c.ta].defined) {
			return 0, fmt.Errorf("%w: jpeg: component %d uses undefined Huffman table", ErrCorrupt, id)
		}
		if d.sof != mSOF3 && !d.qdefined[c.tq] {
			return 0, fmt.Errorf("%w: jpeg: component %d uses undefined quantisation table %d", ErrCorrupt, id, c.tq)
		}
	}
	ss, ah, al := int(seg[1+2*ns]), seg[3+2*ns]>>4, int(seg[3+2*ns]&15)
	r := &bitReader{data: data, pos: pos}
	var err error
	if d.sof == mSOF3 {
		// H.2.2: Ss is the predictor, Al the point transform.
		if ss < 1 || ss > 7 || ah != 0 || al >= d.precision {
			return 0, fmt.Errorf("%w: jpeg: lossless predictor %d, point transform %d", ErrCorrupt, ss, al)
		}
		d.pt = uint(al)
		err = d.losslessScan(r, sc, ss, al)
	} else {
		// Sequential scans have Ss=0, Se=63, Ah=Al=0; like IJG, other
		// values are ignored (pydicom's JPEG-lossy.dcm has Se=0).
		err = d.dctScan(r, sc)
	}
	if err != nil {
		return 0, err
	}
	// The next marker follows; skip anything an encoder left before it.
	for r.pos < len(data) && !(data[r.pos] == 0xFF && r.pos+1 < len(data) && data[r.pos+1] != 0 && data[r.pos+1] != 0xFF) {
		r.pos++
	}
	return r.pos, nil
}

// complete reports whether every component was decoded.
func (d *jpegDecoder) complete() error {
	if d.comps == nil {
		return fmt.Errorf("%w: jpeg: no frame header", ErrCorrupt)
	}
	for _, c := range d.comps {
		if !c.scanned {
			return fmt.Errorf("%w: jpeg: component %d has no scan", ErrCorrupt, c.id)
		}
	}
	return nil
}

// dctScan decodes a sequential DCT scan (T.81 F.2). A single-component
// scan is not interleaved and covers only that component's blocks (A.2.2).
func (d *jpegDecoder) dctScan(r *bitReader, sc []*jpegComponent) error {
	var blk [64]int32
	mcusX, mcusY := d.mcusX, d.mcusY
	if len(sc) == 1 {
		c := sc[0]
		mcusX = ((d.width*c.h+d.hmax-1)/d.hmax + 7) / 8
		mcusY = ((d.height*c.v+d.vmax-1)/d.vmax + 7) / 8
	}
	for my, n := 0, 0; my < mcusY; my++ {
		for mx := 0; mx < mcusX; mx, n = mx+1, n+1 {
			if d.restart > 0 && n > 0 && n%d.restart == 0 {
				if err := r.restart(n/d.restart - 1); err != nil {
					return err
				}
				for _, c := range sc {
					c.pred = 0
				}
			}
			for _, c := range sc {
				bh, bv := c.h, c.v
				if len(sc) == 1 {
					bh, bv = 1, 1
				}
				for by := 0; by < bv; by++ {
					for bx := 0; bx < bh; bx++ {
						if err := d.decodeBlock(r, c, &blk); err != nil {
							return err
						}
						x, y := (mx*bh+bx)*8, (my*bv+by)*8
						idctIslow(&blk, &d.quant[c.tq], c.samples[y*c.stride+x:], c.stride, d.precision)
					}
				}
			}
		}
	}
	return nil
}

// decodeBlock decodes one block's coefficients in natural order (T.81
// F.2.2.1 and F.2.2.2).
func (d *jpegDecoder) decodeBlock(r *bitReader, c *jpegComponent, blk *[64]int32) error {
	*blk = [64]int32{}
	t, err := r.decodeHuff(&d.dc[c.td])
	if err != nil {
		return err
	}
	diff, err := r.receiveExtend(t)
	if err != nil {
		return err
	}
	// IJG keeps coefficients as 16-bit JCOEF.
	c.pred += diff
	blk[0] = int32(int16(c.pred))
	ac := &d.ac[c.ta]
	for k := 1; k < 64; k++ {
		rs, err := r.decodeHuff(ac)
		if err != nil {
			return err
		}
		run, s := int(rs>>4), rs&15
		if s == 0 {
			if run != 15 {
				break // EOB
			}
			k += 15 // ZRL
			continue
		}
		k += run
		if k > 63 {
			return fmt.Errorf("%w: jpeg: AC run passes the end of the block", ErrCorrupt)
		}
		v, err := r.receiveExtend(s)
		if err != nil {
			return err
		}
		blk[zigzag[k]] = v
	}
	return nil
}

// losslessScan decodes a lossless scan (T.81 H.1.2): each sample is a
// Huffman-coded difference from a prediction of its decoded neighbours,
// Ra (left), Rb (above) and Rc (above left), modulo 2^16. The first line
// of the scan and of every restart interval predicts from the left, the
// first sample of each later line from above, and the very first sample
// from 2^(P-Pt-1) (H.1.2.1).
func (d *jpegDecoder) losslessScan(r *bitReader, sc []*jpegComponent, predictor, pt int) error {
	w, h := d.width, d.height
	initial := int32(1) << (d.precision - pt - 1)
	firstLine := true // on the first line of the scan or of a restart interval
	n, start := 0, 0  // MCUs (one sample of each scan component) decoded; n at the interval start
	for y := 0; y < h; y++ {
		for x := 0; x < w; x, n = x+1, n+1 {
			if d.restart > 0 && n > 0 && n%d.restart == 0 {
				if err := r.restart(n/d.restart - 1); err != nil {
					return err
				}
				firstLine, start = true, n
			}
			for _, c := range sc {
				s := c.samples[y*w:]
				var px int32
				switch {
				case firstLine && (x == 0 || n == start):
					px = initial
				case firstLine:
					px = int32(s[x-1])
				case x == 0:
					px = int32(c.samples[(y-1)*w])
				default:
					ra, rb, rc := int32(s[x-1]), int32(c.samples[(y-1)*w+x]), int32(c.samples[(y-1)*w+x-1])
					switch predictor {
					case 1:
						px = ra
					case 2:
						px = rb
					case 3:
						px = rc
					case 4:
						px = ra + rb - rc
					case 5:
						px = ra + (rb-rc)>>1
					case 6:
						px = rb + (ra-rc)>>1
					default:
						px = (ra + rb) >> 1
					}
				}
				t, err := r.decodeHuff(&d.dc[c.td])
				if err != nil {
					return err
				}
				var diff int32
				if t == 16 {
					diff = 32768 // H.1.2.2: SSSS 16 has no extra bits
				} else if diff, err = r.receiveExtend(t); err != nil {
					return err
				}
				s[x] = uint16(px + diff)
			}
		}
		firstLine = false
	}
	return nil
}
