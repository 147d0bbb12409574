package kserve

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
	"github.com/radgate/radgate/inference"
)

// v2 datatypes radgate accepts (the protocol's tensor data types).
const (
	dtFP32  = "FP32"
	dtFP16  = "FP16"
	dtUINT8 = "UINT8"
	dtINT64 = "INT64"
)

// elemSize is the raw size of each accepted datatype.
var elemSize = map[string]int{dtFP32: 4, dtFP16: 2, dtUINT8: 1, dtINT64: 8}

// decodeInput checks the request's one input against the model's manifest
// — name, datatype, shape, then the size of its contents — before
// allocating its float32 tensor.
func decodeInput(l *inference.Loaded, r *inferencev2.ModelInferRequest) (inference.Tensor, error) {
	bad := func(format string, args ...any) error {
		return status.Errorf(codes.InvalidArgument, "model %s: "+format, append([]any{l.ID()}, args...)...)
	}
	ins := r.GetInputs()
	if len(ins) != 1 {
		return inference.Tensor{}, bad("%d inputs given; the model has one, %q", len(ins), l.Input.Name)
	}
	in := ins[0]
	if in.GetName() != l.Input.Name {
		return inference.Tensor{}, bad("input %q given; the model's input is %q", in.GetName(), l.Input.Name)
	}
	size, ok := elemSize[in.GetDatatype()]
	if !ok {
		return inference.Tensor{}, bad("input %s: datatype %q; want FP32, FP16, UINT8 or INT64", in.GetName(), in.GetDatatype())
	}
	shape := in.GetShape()
	want := l.Input.Shape // [-1, C, H, W]
	if len(shape) != len(want) || shape[0] < 1 || shape[0] > maxItems || !slices.Equal(shape[1:], want[1:]) {
		return inference.Tensor{}, bad("input %s: shape %v; want %v with a batch of 1 to %d", in.GetName(), shape, want, maxItems)
	}
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	raw := r.GetRawInputContents()
	if len(raw) > 0 {
		if len(raw) != 1 {
			return inference.Tensor{}, bad("%d raw_input_contents for 1 input", len(raw))
		}
		if in.GetContents() != nil {
			return inference.Tensor{}, bad("input %s: both raw_input_contents and contents given", in.GetName())
		}
		if len(raw[0]) != n*size {
			return inference.Tensor{}, bad("input %s: shape %v of %s needs %d raw bytes, got %d", in.GetName(), shape, in.GetDatatype(), n*size, len(raw[0]))
		}
		return inference.Tensor{Shape: shape, Data: decodeRaw(in.GetDatatype(), raw[0], n)}, nil
	}
	data, err := decodeTyped(in.GetDatatype(), in.GetContents(), n)
	if err != nil {
		return inference.Tensor{}, bad("input %s: %v", in.GetName(), err)
	}
	return inference.Tensor{Shape: shape, Data: data}, nil
}

// decodeRaw converts n little-endian values (len(b) checked by the caller).
func decodeRaw(datatype string, b []byte, n int) []float32 {
	out := make([]float32, n)
	le := binary.LittleEndian
	for i := range out {
		switch datatype {
		case dtFP32:
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		case dtFP16:
			out[i] = halfToFloat(le.Uint16(b[2*i:]))
		case dtUINT8:
			out[i] = float32(b[i])
		case dtINT64:
			out[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	}
	return out
}

// decodeTyped converts the typed contents field matching datatype. FP16
// has none in the protocol: it must come raw.
func decodeTyped(datatype string, c *inferencev2.InferTensorContents, n int) ([]float32, error) {
	count := func(field string, got int) error {
		if got != n {
			return fmt.Errorf("%s holds %d values; the shape needs %d", field, got, n)
		}
		return nil
	}
	out := make([]float32, 0, n)
	switch datatype {
	case dtFP32:
		if err := count("fp32_contents", len(c.GetFp32Contents())); err != nil {
			return nil, err
		}
		out = append(out, c.GetFp32Contents()...)
	case dtUINT8:
		if err := count("uint_contents", len(c.GetUintContents())); err != nil {
			return nil, err
		}
		for _, v := range c.GetUintContents() {
			if v > math.MaxUint8 {
				return nil, fmt.Errorf("uint_contents value %d does not fit UINT8", v)
			}
			out = append(out, float32(v))
		}
	case dtINT64:
		if err := count("int64_contents", len(c.GetInt64Contents())); err != nil {
			return nil, err
		}
		for _, v := range c.GetInt64Contents() {
			out = append(out, float32(v))
		}
	default:
		return nil, fmt.Errorf("%s has no typed contents field: send it in raw_input_contents", datatype)
	}
	return out, nil
}

// encodeFP32 is the raw little-endian form of data.
func encodeFP32(data []float32) []byte {
	b := make([]byte, 0, 4*len(data))
	for _, v := range data {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// halfToFloat widens an IEEE 754 binary16 value exactly: subnormals,
// infinities and NaNs included.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal: rebias 15 → 127
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	case frac == 0: // ±0
		return math.Float32frombits(sign)
	}
	// Subnormal: frac × 2⁻²⁴, exact in float32.
	v := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
