package dcm

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func mustTS(t testing.TB, uid string) TransferSyntax {
	t.Helper()
	ts, ok := LookupTransferSyntax(uid)
	if !ok {
		t.Fatalf("unknown transfer syntax %s", uid)
	}
	return ts
}

func deflate(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func TestScanDataset(t *testing.T) {
	e, i, b := tExplicit, tImplicit, tBig
	nested := func(e testEnc) []byte {
		return e.seq(0x00081140, // Referenced Image Sequence
			e.item(e.str(0x00081150, "UI", "1.2"), e.str(0x00081155, "UI", "1.2.3")),
			e.itemDef(e.str(0x00081150, "UI", "1.2"), e.seqDef(0x00089215, e.itemDef(e.str(0x00080100, "SH", "x")))),
		)
	}
	tests := []struct {
		name string
		ts   string
		data []byte
		want []Tag
		out  Attributes
		err  error
	}{
		{name: "explicit LE", ts: ExplicitVRLittleEndian, data: basicDataSet(e), want: basicWant, out: basicAttrs},
		{name: "implicit LE", ts: ImplicitVRLittleEndian, data: basicDataSet(i), want: basicWant, out: basicAttrs},
		{name: "explicit BE", ts: ExplicitVRBigEndian, data: basicDataSet(b), want: basicWant, out: basicAttrs},
		{name: "empty data set", ts: ExplicitVRLittleEndian, data: nil, want: basicWant, out: Attributes{}},
		{name: "unsorted want", ts: ExplicitVRLittleEndian, data: basicDataSet(e),
			want: []Tag{Rows, SOPInstanceUID, PatientName, 0x00990010},
			out:  Attributes{Rows: "4", SOPInstanceUID: "1.2.3.4.5", PatientName: "Doe^John"}},
		{name: "nothing wanted", ts: ExplicitVRLittleEndian, data: basicDataSet(e), out: Attributes{}},
		{name: "multi-valued and padding", ts: ExplicitVRLittleEndian,
			data: cat(e.el(0x00080008, "CS", []byte("ORIGINAL\\PRIMARY ")), e.el(PatientName, "PN", []byte("A^B\x00\x00  "))),
			want: []Tag{0x00080008, PatientName},
			out:  Attributes{0x00080008: `ORIGINAL\PRIMARY`, PatientName: "A^B"}},
		{name: "binary VRs LE", ts: ExplicitVRLittleEndian,
			data: cat(
				e.us(0x00280002, 1, 65535),
				e.el(0x00280106, "SS", e.u16(nil, 0xFFFE)),
				e.el(0x00281052, "FL", e.u32(nil, math.Float32bits(1.5))),
				e.el(0x00281053, "FD", e.u32(e.u32(nil, uint32(math.Float64bits(-0.25))), uint32(math.Float64bits(-0.25)>>32))),
				e.el(0x00290010, "SL", e.u32(nil, 0xFFFFFFFF)),
				e.el(0x00290011, "UL", e.u32(nil, 70000)),
				e.el(0x00290012, "AT", e.u16(e.u16(nil, 0x0010), 0x0020)),
			),
			want: []Tag{0x00280002, 0x00280106, 0x00281052, 0x00281053, 0x00290010, 0x00290011, 0x00290012},
			out: Attributes{0x00280002: `1\65535`, 0x00280106: "-2", 0x00281052: "1.5", 0x00281053: "-0.25",
				0x00290010: "-1", 0x00290011: "70000", 0x00290012: "(0010,0020)"}},
		{name: "binary VRs BE", ts: ExplicitVRBigEndian,
			data: cat(b.us(Rows, 512), b.el(0x00290010, "SL", b.u32(nil, 0xFFFFFFFE))),
			want: []Tag{Rows, 0x00290010},
			out:  Attributes{Rows: "512", 0x00290010: "-2"}},
		{name: "implicit binary from dictionary", ts: ImplicitVRLittleEndian,
			data: cat(i.str(SOPInstanceUID, "UI", "1.2"), i.us(Rows, 300), i.us(Columns, 200), i.el(0x00280100, "", i.u16(nil, 16))),
			want: []Tag{Rows, Columns, 0x00280100},
			out:  Attributes{Rows: "300", Columns: "200", 0x00280100: "16"}},
		{name: "UN holds implicit LE value", ts: ExplicitVRBigEndian,
			data: cat(b.el(Rows, "UN", []byte{0x00, 0x02}), b.el(PatientID, "UN", []byte("ID "))),
			want: []Tag{Rows, PatientID},
			out:  Attributes{Rows: "512", PatientID: "ID"}},
		{name: "bulk binary not returned", ts: ExplicitVRLittleEndian,
			data: cat(e.el(0x00091010, "OB", []byte{1, 2}), e.el(PixelData, "OW", []byte{1, 2})),
			want: []Tag{0x00091010, PixelData},
			out:  Attributes{}},
		{name: "nested sequences explicit", ts: ExplicitVRLittleEndian,
			data: cat(e.str(SOPInstanceUID, "UI", "9.9"), nested(e), e.str(PatientID, "LO", "P")),
			want: []Tag{SOPInstanceUID, 0x00081150, 0x00081140, PatientID},
			out:  Attributes{SOPInstanceUID: "9.9", PatientID: "P"}},
		{name: "nested sequences implicit", ts: ImplicitVRLittleEndian,
			// In implicit VR a defined-length sequence is opaque.
			data: cat(i.str(SOPInstanceUID, "UI", "9.9"), nested(i), i.str(PatientID, "LO", "P")),
			want: []Tag{SOPInstanceUID, 0x00081150, PatientID},
			out:  Attributes{SOPInstanceUID: "9.9", PatientID: "P"}},
		{name: "nested sequences BE", ts: ExplicitVRBigEndian,
			data: cat(b.str(SOPInstanceUID, "UI", "9.9"), nested(b), b.str(PatientID, "LO", "P")),
			want: []Tag{SOPInstanceUID, PatientID},
			out:  Attributes{SOPInstanceUID: "9.9", PatientID: "P"}},
		{name: "empty sequence and item", ts: ExplicitVRLittleEndian,
			data: cat(e.seq(0x00081140), e.seqDef(0x00081150), e.seq(0x00081160, e.item(), e.itemDef()), e.str(PatientID, "LO", "P")),
			want: []Tag{PatientID},
			out:  Attributes{PatientID: "P"}},
		{name: "UN undefined length is implicit sequence", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00091010, "UN", undefinedLength),
				i.item(i.str(0x00091011, "LO", "x"), i.seq(0x00091012, i.item(i.str(0x00091013, "LO", "y")))),
				i.hdr(SequenceDelimitationItem, "", 0),
				e.str(PatientID, "LO", "P")),
			want: []Tag{PatientID},
			out:  Attributes{PatientID: "P"}},
		{name: "encapsulated pixel data", ts: JPEGBaseline8Bit,
			data: cat(e.str(SOPInstanceUID, "UI", "1.2"), e.encapsulated(nil, []byte{0xFF, 0xD8, 0xFF, 0xD9}, bytes.Repeat([]byte{0xFE, 0xFF, 0xDD, 0xE0}, 8)),
				e.el(DataSetTrailingPadding, "OB", make([]byte, 6))),
			want: []Tag{SOPInstanceUID, PixelData},
			out:  Attributes{SOPInstanceUID: "1.2"}},
		{name: "encapsulated pixel data in BE", ts: ExplicitVRBigEndian,
			data: cat(b.str(SOPInstanceUID, "UI", "1.2"), b.encapsulated(nil, []byte{1, 2})),
			want: []Tag{SOPInstanceUID},
			out:  Attributes{SOPInstanceUID: "1.2"}},
		{name: "icon pixel data in item", ts: JPEGBaseline8Bit,
			data: cat(e.seq(0x00880200, e.item(e.us(Rows, 8), e.encapsulated(nil, []byte{1, 2}))), e.us(Rows, 64)),
			want: []Tag{Rows},
			out:  Attributes{Rows: "64"}},
		{name: "odd length accepted", ts: ExplicitVRLittleEndian,
			data: cat(e.el(PatientID, "LO", []byte("ABC")), e.us(Rows, 1)),
			want: []Tag{PatientID, Rows},
			out:  Attributes{PatientID: "ABC", Rows: "1"}},
		{name: "unknown VR has 32-bit length", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00091010, "ZZ", 0)[:6], []byte{0, 0, 3, 0, 0, 0, 'a', 'b', 'c'}, e.us(Rows, 1)),
			want: []Tag{Rows},
			out:  Attributes{Rows: "1"}},
		{name: "wanted value over limit skipped", ts: ExplicitVRLittleEndian,
			data: cat(e.el(0x00204000, "UT", bytes.Repeat([]byte("x"), MaxValueLength+2)), e.us(Rows, 1)),
			want: []Tag{0x00204000, Rows},
			out:  Attributes{Rows: "1"}},
		{name: "wanted value at limit", ts: ExplicitVRLittleEndian,
			data: e.el(0x00204000, "UT", bytes.Repeat([]byte("x"), MaxValueLength)),
			want: []Tag{0x00204000},
			out:  Attributes{0x00204000: strings.Repeat("x", MaxValueLength)}},
		{name: "explicit meta, implicit data set", ts: JPEGBaseline8Bit,
			data: basicDataSet(i), want: basicWant, out: basicAttrs},
		{name: "implicit meta, explicit data set", ts: ImplicitVRLittleEndian,
			data: basicDataSet(e), want: basicWant, out: basicAttrs},
		{name: "stray item delimiter in defined-length item", ts: ExplicitVRLittleEndian,
			data: cat(e.seqDef(0x00081140, e.itemDef(e.str(0x00081150, "UI", "1.2"), e.hdr(ItemDelimitationItem, "", 0))), e.us(Rows, 1)),
			want: []Tag{Rows},
			out:  Attributes{Rows: "1"}},

		// Structural errors.
		{name: "truncated header", ts: ExplicitVRLittleEndian,
			data: basicDataSet(e)[:5], err: ErrMalformed},
		{name: "truncated long header", ts: ExplicitVRLittleEndian,
			data: e.hdr(PixelData, "OW", 4)[:10], err: ErrMalformed},
		{name: "truncated value", ts: ExplicitVRLittleEndian,
			data: e.el(PixelData, "OW", make([]byte, 16))[:20], err: ErrMalformed},
		{name: "truncated wanted value", ts: ExplicitVRLittleEndian, want: []Tag{PatientID},
			data: e.str(PatientID, "LO", "ABCDEF")[:10], err: ErrMalformed},
		{name: "item at top level", ts: ExplicitVRLittleEndian,
			data: e.itemDef(), err: ErrMalformed},
		{name: "sequence delimiter at top level", ts: ImplicitVRLittleEndian,
			data: i.hdr(SequenceDelimitationItem, "", 0), err: ErrMalformed},
		{name: "item delimiter at top level", ts: ImplicitVRLittleEndian,
			data: i.hdr(ItemDelimitationItem, "", 0), err: ErrMalformed},
		{name: "element in sequence", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", undefinedLength), e.str(PatientID, "LO", "P")), err: ErrMalformed},
		{name: "unterminated sequence", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", undefinedLength), e.itemDef()), err: ErrMalformed},
		{name: "unterminated item", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", undefinedLength), e.hdr(Item, "", undefinedLength), e.str(PatientID, "LO", "P")), err: ErrMalformed},
		{name: "item overruns sequence", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", 8), e.hdr(Item, "", 4), e.str(PatientID, "LO", "P")), err: ErrMalformed},
		{name: "element overruns item", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", 17), e.hdr(Item, "", 9), e.str(PatientID, "LO", "PP")), err: ErrMalformed},
		{name: "header overruns item", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", 12), e.hdr(Item, "", 4), e.str(PatientID, "LO", "PP")), err: ErrMalformed},
		{name: "undefined length LO", ts: ExplicitVRLittleEndian,
			data: e.hdr(PatientID, "LO", 0xFFFF)[:6], err: ErrMalformed},
		{name: "undefined length OB not pixel data", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00091010, "OB", undefinedLength), e.hdr(SequenceDelimitationItem, "", 0)), err: ErrMalformed},
		{name: "no VR in explicit", ts: ExplicitVRLittleEndian,
			data: cat(e.us(Rows, 1), i.el(Columns, "", []byte{1, 0})), err: ErrMalformed},
		{name: "fragment of undefined length", ts: JPEGBaseline8Bit,
			data: cat(e.hdr(PixelData, "OB", undefinedLength), e.hdr(Item, "", undefinedLength)), err: ErrMalformed},
		{name: "element among fragments", ts: JPEGBaseline8Bit,
			data: cat(e.hdr(PixelData, "OB", undefinedLength), e.us(Rows, 1)), err: ErrMalformed},
		{name: "unterminated fragments", ts: JPEGBaseline8Bit,
			data: cat(e.hdr(PixelData, "OB", undefinedLength), e.hdr(Item, "", 2), []byte{1, 2}), err: ErrMalformed},
		{name: "delimiter with length", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(0x00081140, "SQ", undefinedLength), e.hdr(SequenceDelimitationItem, "", 2), []byte{0, 0}), err: ErrMalformed},
		{name: "nesting too deep", ts: ImplicitVRLittleEndian,
			data: deepNesting(i, MaxDepth+1), err: ErrMalformed},
		{name: "nesting at limit", ts: ImplicitVRLittleEndian,
			data: deepNesting(i, MaxDepth), out: Attributes{}},
		{name: "huge length", ts: ExplicitVRLittleEndian,
			data: cat(e.hdr(PixelData, "OW", 0xFFFFFFF0), []byte{1, 2, 3}), err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := mustTS(t, tc.ts)
			for _, mode := range []string{"whole", "one byte"} {
				var r io.Reader = bytes.NewReader(tc.data)
				if mode == "one byte" {
					r = iotest.OneByteReader(r)
				}
				got, err := ScanDataset(r, ts, tc.want)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("%s: err = %v, want %v", mode, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if diff := cmp.Diff(tc.out, got); diff != "" {
					t.Errorf("%s: attributes (-want +got):\n%s", mode, diff)
				}
			}
		})
	}
}

// deepNesting builds depth nested undefined-length sequences.
func deepNesting(e testEnc, depth int) []byte {
	inner := e.str(PatientID, "LO", "P")
	for d := 0; d < depth; d++ {
		inner = e.seq(0x00091010, e.item(inner))
	}
	return inner
}

func TestScanDatasetDeflated(t *testing.T) {
	ts := mustTS(t, DeflatedExplicitVRLittleEndian)
	data := deflate(t, basicDataSet(tExplicit))
	got, err := ScanDataset(bytes.NewReader(data), ts, basicWant)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(basicAttrs, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range [][]byte{data[:len(data)/2], {0xFF, 0xFF, 0xFF}} {
		if _, err := ScanDataset(bytes.NewReader(bad), ts, basicWant); !errors.Is(err, ErrMalformed) {
			t.Errorf("corrupt deflate stream: err = %v, want ErrMalformed", err)
		}
	}
}

// errReader fails after its data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestScanDatasetReadError(t *testing.T) {
	boom := errors.New("boom")
	data := basicDataSet(tExplicit)
	_, err := ScanDataset(&errReader{bytes.NewReader(data[:40]), boom}, mustTS(t, ExplicitVRLittleEndian), basicWant)
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v, want the read error and not ErrMalformed", err)
	}
}

func TestScanDatasetTruncatedEverywhere(t *testing.T) {
	// Every cut inside an element is an error; cuts on a top-level
	// element boundary are shorter valid data sets.
	for _, enc := range []testEnc{tExplicit, tImplicit, tBig} {
		var parts [][]byte
		parts = append(parts, enc.str(SOPInstanceUID, "UI", "1.2.3"))
		parts = append(parts, enc.seq(0x00081140, enc.item(enc.str(0x00081150, "UI", "1.2")), enc.itemDef(enc.us(Rows, 1))))
		parts = append(parts, enc.us(Rows, 1))
		if enc.explicit {
			parts = append(parts, enc.encapsulated(nil, []byte{1, 2, 3, 4}))
		} else {
			parts = append(parts, enc.el(PixelData, "OW", make([]byte, 8)))
		}
		data := cat(parts...)
		boundary := map[int]bool{0: true}
		off := 0
		for _, p := range parts {
			off += len(p)
			boundary[off] = true
		}
		ts := TransferSyntax{Explicit: enc.explicit, BigEndian: enc.big}
		for n := 0; n <= len(data); n++ {
			_, err := ScanDataset(bytes.NewReader(data[:n]), ts, []Tag{SOPInstanceUID})
			if boundary[n] != (err == nil) {
				t.Errorf("%+v cut at %d: err = %v, boundary %v", enc, n, err, boundary[n])
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("%+v cut at %d: err = %v, want ErrMalformed", enc, n, err)
			}
		}
	}
}

func TestTagString(t *testing.T) {
	for tag, want := range map[Tag]string{PatientID: "(0010,0020)", PixelData: "(7FE0,0010)", 0: "(0000,0000)", Item: "(FFFE,E000)", SeriesDescription: "(0008,103E)"} {
		if got := tag.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint32(tag), got, want)
		}
	}
	if g, e := NewTag(0x0020, 0x000D), StudyInstanceUID; g != e || g.Group() != 0x20 || g.Element() != 0x0D {
		t.Errorf("NewTag = %v, want %v", g, e)
	}
}
