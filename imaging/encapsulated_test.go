package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// encapsulated encodes a Pixel Data element of undefined length (PS3.5
// A.4): the Basic Offset Table item bot, one item per fragment, the
// Sequence Delimitation Item.
func encapsulated(bot []byte, frags ...[]byte) []byte {
	b := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}
	b = append(b, encapsulatedBody(bot, frags...)...)
	return b
}

func encapsulatedBody(bot []byte, frags ...[]byte) []byte {
	item := func(b, v []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, itemTag)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...)
	}
	b := item(nil, bot)
	for _, f := range frags {
		b = item(b, f)
	}
	b = binary.LittleEndian.AppendUint32(b, seqDelimiterTag)
	return binary.LittleEndian.AppendUint32(b, 0)
}

func offsets(o ...uint32) []byte {
	var b []byte
	for _, v := range o {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

// TestEncapsulatedFrames: fragments to frames, PS3.5 A.4.
func TestEncapsulatedFrames(t *testing.T) {
	a, b, c := []byte("aaaa"), []byte("bb"), []byte("cccccc")
	jpeg1, jpeg2, more := []byte{0xFF, 0xD8, 0xFF, 1}, []byte{0xFF, 0xD8, 0xFF, 2}, []byte{3, 4}
	for _, tc := range []struct {
		name   string
		body   []byte
		frames int
		want   [][]byte
	}{
		{"single frame: all fragments", encapsulatedBody(nil, a, b, c), 1, [][]byte{[]byte("aaaabbcccccc")}},
		{"one fragment per frame", encapsulatedBody(nil, a, b, c), 3, [][]byte{a, b, c}},
		// Items are 8 + length bytes: a at 0, b at 12, c at 22.
		{"basic offset table", encapsulatedBody(offsets(0, 22), a, b, c), 2, [][]byte{[]byte("aaaabb"), c}},
		{"JPEG markers", encapsulatedBody(nil, jpeg1, more, jpeg2), 2, [][]byte{append(append([]byte{}, jpeg1...), more...), jpeg2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encapsulatedFrames(tc.body, tc.frames)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Error(d)
			}
		})
	}
	good := encapsulatedBody(offsets(0, 12), a, b)
	for _, tc := range []struct {
		name   string
		body   []byte
		frames int
	}{
		{"no delimiter", good[:len(good)-8], 2},
		{"truncated item", good[:len(good)-12], 2},
		{"offset not at a fragment", encapsulatedBody(offsets(0, 5), a, b), 2},
		{"offset table count", encapsulatedBody(offsets(0), a, b), 2},
		{"no fragments", encapsulatedBody(nil), 1},
		{"frame boundaries unknown", encapsulatedBody(nil, a, b, c), 2},
		{"odd offset table", encapsulatedBody([]byte{1, 2}, a), 1},
		{"not an item", bytes.Repeat([]byte{1}, 16), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := encapsulatedFrames(tc.body, tc.frames); !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}
