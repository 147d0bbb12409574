package codec

import "strings"

// The inverse DCT below is the IJG "islow" integer algorithm (jidctint.c,
// after Loeffler, Ligtenberg and Moschytz) with 13-bit constants; it meets
// the IEEE 1180 accuracy T.81 Annex A.3.3 refers to and reproduces IJG's
// (and so dcmtk's) output exactly.
const (
	idctConstBits = 13
	fix0298631336 = 2446 // FIX(0.298631336) = round(0.298631336 · 2^13)
	fix0390180644 = 3196
	fix0541196100 = 4433
	fix0765366865 = 6270
	fix0899976223 = 7373
	fix1175875602 = 9633
	fix1501321110 = 12299
	fix1847759065 = 15137
	fix1961570560 = 16069
	fix2053119869 = 16819
	fix2562915447 = 20995
	fix3072711026 = 25172
)

func descale(x int64, n uint) int64 { return (x + 1<<(n-1)) >> n }

// idct1D is one 8-point pass: in holds the 8 inputs, it returns the 8
// outputs scaled by 2^idctConstBits (even part, then odd part).
func idct1D(in *[8]int64) (out [8]int64) {
	z2, z3 := in[2], in[6]
	z1 := (z2 + z3) * fix0541196100
	tmp2 := z1 - z3*fix1847759065
	tmp3 := z1 + z2*fix0765366865
	tmp0 := (in[0] + in[4]) << idctConstBits
	tmp1 := (in[0] - in[4]) << idctConstBits
	tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
	tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

	t0, t1, t2, t3 := in[7], in[5], in[3], in[1]
	z1, z2, z3 = t0+t3, t1+t2, t0+t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1175875602
	t0 *= fix0298631336
	t1 *= fix2053119869
	t2 *= fix3072711026
	t3 *= fix1501321110
	z1 *= -fix0899976223
	z2 *= -fix2562915447
	z3 = z3*-fix1961570560 + z5
	z4 = z4*-fix0390180644 + z5
	t0 += z1 + z3
	t1 += z2 + z4
	t2 += z2 + z3
	t3 += z1 + z4
	return [8]int64{tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3}
}

// idctIslow dequantises blk (natural order), inverse-transforms it and
// writes the level-shifted, clamped samples (T.81 A.3.1) to out, rows
// stride apart.
func idctIslow(blk, q *[64]int32, out []uint16, stride, precision int) {
	// IJG keeps 2 extra bits between passes for 8-bit data, 1 for 12-bit
	// (PASS1_BITS), so the workspace stays within 32 bits.
	pass1 := uint(2)
	if precision > 8 {
		pass1 = 1
	}
	var ws [64]int32
	var v [8]int64
	for col := 0; col < 8; col++ {
		for row := range v {
			v[row] = int64(blk[row*8+col]) * int64(q[row*8+col])
		}
		o := idct1D(&v)
		for row := range o {
			ws[row*8+col] = int32(descale(o[row], idctConstBits-pass1))
		}
	}
	center, maxv := int64(1)<<(precision-1), int64(1)<<precision-1
	for row := 0; row < 8; row++ {
		for k := range v {
			v[k] = int64(ws[row*8+k])
		}
		o := idct1D(&v)
		dst := out[row*stride : row*stride+8]
		for k := range dst {
			dst[k] = uint16(min(max(descale(o[k], idctConstBits+pass1+3)+center, 0), maxv))
		}
	}
}

// output assembles the decoded components into the native frame.
func (d *jpegDecoder) output() (Frame, error) {
	f := newFrame(d.p)
	nc, w, h := len(d.comps), d.width, d.height
	planes := make([][]uint16, nc)
	strides := make([]int, nc)
	for i := range d.comps {
		planes[i], strides[i] = d.fullResolution(&d.comps[i])
	}
	ycc := d.sof != mSOF3 && d.isYCbCr()
	if ycc {
		f.PhotometricInterpretation = "RGB"
	}
	ba := d.p.BitsAllocated
	if ycc {
		center, maxv := int32(1)<<(d.precision-1), int32(1)<<d.precision-1
		for y := 0; y < h; y++ {
			cy, cb, cr := planes[0][y*strides[0]:], planes[1][y*strides[1]:], planes[2][y*strides[2]:]
			for x := 0; x < w; x++ {
				i := 3 * (y*w + x)
				r, g, b := yccToRGB(int32(cy[x]), int32(cb[x]), int32(cr[x]), center, maxv)
				putSample(f.Pixels, i, uint32(r), ba)
				putSample(f.Pixels, i+1, uint32(g), ba)
				putSample(f.Pixels, i+2, uint32(b), ba)
			}
		}
		return f, nil
	}
	for c, plane := range planes {
		for y := 0; y < h; y++ {
			row := plane[y*strides[c] : y*strides[c]+w]
			for x, v := range row {
				// Lossless samples are restored by the point transform
				// (H.1.2.1: the decoder shifts left by Pt; 0 for DCT).
				putSample(f.Pixels, (y*w+x)*nc+c, uint32(v)<<d.pt, ba)
			}
		}
	}
	return f, nil
}

// isYCbCr decides whether a 3-component DCT image was colour-transformed
// by the encoder, in the order IJG uses (jdapimin.c): an Adobe APP14
// marker's transform flag, a JFIF APP0 marker (always YCbCr), component
// identifiers 'R','G','B' (not transformed) or 1,2,3 (JFIF's YCbCr).
// Without any of those, the data set's Photometric Interpretation decides
// (PS3.5 8.2.1: YBR_FULL_422 or YBR_FULL for transformed data, RGB for
// untransformed) — pydicom's SC_jpeg_no_color_transform.dcm is such a
// stream, with identifiers 0,1,2 and RGB.
func (d *jpegDecoder) isYCbCr() bool {
	if len(d.comps) != 3 {
		return false
	}
	switch id := [3]byte{d.comps[0].id, d.comps[1].id, d.comps[2].id}; {
	case d.adobe:
		return d.transform != 0
	case d.jfif:
		return true
	case id == [3]byte{'R', 'G', 'B'}:
		return false
	case id == [3]byte{1, 2, 3}:
		return true
	}
	return strings.HasPrefix(d.p.PhotometricInterpretation, "YBR")
}

// yccToRGB converts JFIF YCbCr (ITU-R BT.601 full range) to RGB with IJG's
// 16-bit fixed-point coefficients (jdcolor.c).
func yccToRGB(y, cb, cr, center, maxv int32) (r, g, b int32) {
	const half = 1 << 15
	x, z := int64(cr-center), int64(cb-center)
	r = y + int32((91881*x+half)>>16)             // 1.40200·Cr
	g = y + int32((-46802*x+(-22554*z+half))>>16) // -0.71414·Cr - 0.34414·Cb
	b = y + int32((116130*z+half)>>16)            // 1.77200·Cb
	clamp := func(v int32) int32 { return min(max(v, 0), maxv) }
	return clamp(r), clamp(g), clamp(b)
}

// fullResolution returns component c upsampled to the image size and its
// row stride. Like IJG (jdsample.c), 2:1 horizontal and 2:1×2:1 chroma is
// interpolated with the triangular "fancy" filter, other ratios replicate.
func (d *jpegDecoder) fullResolution(c *jpegComponent) ([]uint16, int) {
	fx, fy := d.hmax/c.h, d.vmax/c.v
	if fx == 1 && fy == 1 {
		return c.samples, c.stride
	}
	w, h := d.width, d.height
	dw := (w*c.h + d.hmax - 1) / d.hmax // downsampled size (A.1.1)
	dh := (h*c.v + d.vmax - 1) / d.vmax
	out := make([]uint16, w*h)
	row := make([]uint16, 2*dw)
	sums := make([]int32, dw)
	switch {
	case fx == 2 && fy == 1 && dw > 2:
		for y := 0; y < h; y++ {
			in := c.samples[y*c.stride:]
			for x := range sums {
				sums[x] = int32(in[x])
			}
			fancyRow(sums, row, 1, 2, 2)
			copy(out[y*w:(y+1)*w], row)
		}
	case fx == 2 && fy == 2 && dw > 2:
		// Each output row weighs its nearer input row 3:1 against the
		// farther one; the edge rows repeat (IJG context rows).
		for y := 0; y < h; y++ {
			near := y / 2
			far := near - 1
			if y%2 == 1 {
				far = near + 1
			}
			far = min(max(far, 0), dh-1)
			a, b := c.samples[near*c.stride:], c.samples[far*c.stride:]
			for x := range sums {
				sums[x] = 3*int32(a[x]) + int32(b[x])
			}
			fancyRow(sums, row, 8, 7, 4)
			copy(out[y*w:(y+1)*w], row)
		}
	default:
		for y := 0; y < h; y++ {
			in := c.samples[(y/fy)*c.stride:]
			for x := 0; x < w; x++ {
				out[y*w+x] = in[x/fx]
			}
		}
	}
	return out, w
}

// fancyRow doubles a row horizontally: each output sample is 3/4 its
// nearer input and 1/4 the next one out (edges repeat), rounded with
// biases left and right and scaled down by shift (IJG h2v1/h2v2 fancy).
func fancyRow(s []int32, out []uint16, left, right int32, shift uint) {
	n := len(s)
	for x := range s {
		prev, next := s[max(x-1, 0)], s[min(x+1, n-1)]
		out[2*x] = uint16((3*s[x] + prev + left) >> shift)
		out[2*x+1] = uint16((3*s[x] + next + right) >> shift)
	}
}
