package sr

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/suyashkumar/dicom/pkg/charset"
	"github.com/suyashkumar/dicom/pkg/tag"
)

var multiByte = map[string]bool{"shift_jis": true, "euc-kr": true, "iso-2022-jp": true, "iso-ir-58": true, "gb18030": true, "gbk": true}

// TestSourceEncoding: for every character set in htmlEncodings, the
// encoder sourceEncoding picks undoes the decoder suyashkumar/dicom
// applies, so that copied text keeps its bytes.
func TestSourceEncoding(t *testing.T) {
	for term := range htmlEncodings {
		cs, err := charset.ParseSpecificCharacterSet([]string{term})
		if err != nil {
			t.Errorf("%q: suyashkumar/dicom does not know it: %v", term, err)
			continue
		}
		enc, err := sourceEncoding([]string{term})
		if err != nil || enc == nil {
			t.Errorf("%q: no encoding (%v)", term, err)
			continue
		}
		e := enc.NewEncoder()
		// every single byte the decoder takes as a character encodes back
		// to itself, or fails to (ErrSource: never other bytes); ASCII
		// always does. In the multi-byte sets a high byte alone is no
		// character.
		last := 0xff
		if multiByte[htmlEncodings[term]] {
			last = 0x7f
		}
		for b := 0x20; b <= last; b++ {
			dec, err := cs.Ideographic.Bytes([]byte{byte(b)})
			if err != nil || bytes.ContainsRune(dec, utf8.RuneError) {
				continue
			}
			back, err := e.Bytes(dec)
			if (err == nil || b < 0x80) && !bytes.Equal(back, []byte{byte(b)}) {
				t.Errorf("%q: byte %#x decodes to %q, encodes back to %q (%v)", term, b, dec, back, err)
			}
		}
	}
	// with code extensions the second term decodes every value: a name
	// in JIS X 0208 (Yamada^Tarou) with its escape sequences
	jis := []byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")
	terms := []string{"", "ISO 2022 IR 87"}
	cs, err := charset.ParseSpecificCharacterSet(terms)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cs.Ideographic.Bytes(jis)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := sourceEncoding(terms)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := enc.NewEncoder().Bytes(dec); err != nil || !bytes.Equal(back, jis) {
		t.Errorf("JIS name: decoded %q, encoded back %q (%v)", dec, back, err)
	}
	for _, terms := range [][]string{nil, {"ISO_IR 192"}, {"ISO_IR 203"}} {
		if enc, err := sourceEncoding(terms); enc != nil || err != nil {
			t.Errorf("%q: %v, %v; want no re-encoding", terms, enc, err)
		}
	}
}

// TestCopiedGroups: readSource stops after lastCopiedGroup, so every
// copied attribute must lie in a group up to it.
func TestCopiedGroups(t *testing.T) {
	for tg := range copied {
		if tg.Group > lastCopiedGroup {
			t.Errorf("%s lies after group %#04x", tag.DebugString(tg), lastCopiedGroup)
		}
	}
	for _, tg := range type2 {
		if !copied[tg] {
			t.Errorf("Type 2 %s is not copied", tag.DebugString(tg))
		}
	}
}
