package store

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzSealedHeader feeds arbitrary bytes to the sealed-header reader: it
// must not panic, must fail with ErrSealBroken, or return a header that
// encodes back to exactly the bytes it read.
func FuzzSealedHeader(f *testing.F) {
	h := sealedHeader{kek: "KEKID", wrapped: bytes.Repeat([]byte{1}, 60), prefix: [4]byte{1, 2, 3, 4}}
	h.encode()
	f.Add(h.raw)
	f.Add(append(h.raw, 0xFF, 0xFF))
	f.Add(h.raw[:len(h.raw)-1])
	f.Add([]byte(sealMagic + "\x01\x00"))
	f.Add([]byte(sealMagic + "\x01\x01A\xFF\xFF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readSealedHeader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrSealBroken) {
				t.Fatalf("error %v does not wrap ErrSealBroken", err)
			}
			return
		}
		raw := h.raw
		h.encode()
		if !bytes.Equal(h.raw, raw) || !bytes.Equal(raw, data[:len(raw)]) {
			t.Fatalf("header does not encode back to what was read")
		}
	})
}

// FuzzKeyFile: the key file parser never panics, and what it accepts
// encodes and parses back to the same keys.
func FuzzKeyFile(f *testing.F) {
	b, err := encodeKeyFile([]kek{newKEK(), newKEK()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"format":"radgate-keys/1","keys":[]}`))
	f.Add([]byte(`{"format":"radgate-keys/1","keys":[{"id":"A","created":"2026-01-31T10:15:00Z","key":"AAAA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keks, err := parseKeyFile(data)
		if err != nil {
			return
		}
		b, err := encodeKeyFile(keks)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseKeyFile(b)
		if err != nil || len(again) != len(keks) {
			t.Fatalf("re-encoded key file: %d keys of %d, %v", len(again), len(keks), err)
		}
		for i := range keks {
			if again[i].ID != keks[i].ID || !bytes.Equal(again[i].Key, keks[i].Key) || !again[i].Created.Equal(keks[i].Created) {
				t.Fatalf("key %d changed in the round trip", i)
			}
		}
	})
}

// FuzzSealMarker: the seal marker parser never panics and accepts only
// markers with a valid key id and check value.
func FuzzSealMarker(f *testing.F) {
	f.Add([]byte(`{"format":"radgate-seal/1","plaintext_before_segment":3,"kek":"A","check":"AAAA"}`))
	f.Add([]byte(`{"format":"radgate-seal/1","kek":"A B","check":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseSealMarker(data)
		if err == nil && (!validKeyID(m.KEK) || len(m.Check) == 0 || len(m.Check) > maxWrappedLen) {
			t.Fatalf("accepted an invalid marker: %+v", m)
		}
	})
}
