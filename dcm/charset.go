package dcm

import (
	"strings"
	"unicode/utf8"

	textenc "golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Charset decodes the text values of a data set (PS3.5 6.1) into UTF-8,
// given its Specific Character Set (0008,0005). The zero Charset is the
// default repertoire.
//
// Package sr keeps its own table (sr/source.go htmlEncodings): it must
// mirror what suyashkumar/dicom decodes with, quirks included, to undo it
// byte for byte, which is not the same question as decoding correctly.
type Charset struct {
	g1        textenc.Encoding // what the first term designates (nil: the default repertoire)
	utf8      bool             // ISO_IR 192: already UTF-8
	extension bool             // ISO 2022 code extensions: escape sequences switch sets (PS3.5 6.1.2.5)
}

// g1Sets are the character sets a Specific Character Set term designates
// (PS3.3 C.12.1.1.2, Tables C.12-2 to C.12-5): single-byte sets with
// their G1 half, the multi-byte ones by an encoding whose ASCII half is
// ISO 646. GBK decodes GB 2312 as ISO 2022 IR 58 carries it (EUC-CN).
// Windows-874 is a superset of TIS 620-2533 (ISO_IR 166).
var g1Sets = map[string]textenc.Encoding{
	"ISO_IR 100": charmap.ISO8859_1, "ISO 2022 IR 100": charmap.ISO8859_1,
	"ISO_IR 101": charmap.ISO8859_2, "ISO 2022 IR 101": charmap.ISO8859_2,
	"ISO_IR 109": charmap.ISO8859_3, "ISO 2022 IR 109": charmap.ISO8859_3,
	"ISO_IR 110": charmap.ISO8859_4, "ISO 2022 IR 110": charmap.ISO8859_4,
	"ISO_IR 144": charmap.ISO8859_5, "ISO 2022 IR 144": charmap.ISO8859_5,
	"ISO_IR 127": charmap.ISO8859_6, "ISO 2022 IR 127": charmap.ISO8859_6,
	"ISO_IR 126": charmap.ISO8859_7, "ISO 2022 IR 126": charmap.ISO8859_7,
	"ISO_IR 138": charmap.ISO8859_8, "ISO 2022 IR 138": charmap.ISO8859_8,
	"ISO_IR 148": charmap.ISO8859_9, "ISO 2022 IR 148": charmap.ISO8859_9,
	"ISO_IR 203": charmap.ISO8859_15, "ISO 2022 IR 203": charmap.ISO8859_15,
	"ISO_IR 166": charmap.Windows874, "ISO 2022 IR 166": charmap.Windows874,
	"ISO_IR 13": japanese.ShiftJIS, "ISO 2022 IR 13": japanese.ShiftJIS, // JIS X 0201: katakana in G1
	"ISO 2022 IR 149": korean.EUCKR,
	"ISO 2022 IR 58":  simplifiedchinese.GBK,
	"GB18030":         simplifiedchinese.GB18030,
	"GBK":             simplifiedchinese.GBK,
}

// designation is what an escape sequence designates (PS3.3 Tables C.12-3
// and C.12-4): a G0 set (jis: a JIS X 0208 or 0212 two-byte set, else
// ISO 646 or JIS X 0201 romaji, read as ASCII) or a G1 set.
type designation struct {
	g0, jis bool
	g1      textenc.Encoding
}

var escapes = map[string]designation{
	"\x1b(B":  {g0: true},
	"\x1b(J":  {g0: true},
	"\x1b$B":  {g0: true, jis: true},
	"\x1b$(D": {g0: true, jis: true},
	"\x1b)I":  {g1: japanese.ShiftJIS},
	"\x1b-A":  {g1: charmap.ISO8859_1},
	"\x1b-B":  {g1: charmap.ISO8859_2},
	"\x1b-C":  {g1: charmap.ISO8859_3},
	"\x1b-D":  {g1: charmap.ISO8859_4},
	"\x1b-L":  {g1: charmap.ISO8859_5},
	"\x1b-G":  {g1: charmap.ISO8859_6},
	"\x1b-F":  {g1: charmap.ISO8859_7},
	"\x1b-H":  {g1: charmap.ISO8859_8},
	"\x1b-M":  {g1: charmap.ISO8859_9},
	"\x1b-b":  {g1: charmap.ISO8859_15},
	"\x1b-T":  {g1: charmap.Windows874},
	"\x1b$)C": {g1: korean.EUCKR},
	"\x1b$)A": {g1: simplifiedchinese.GBK},
}

// ParseCharset reads a Specific Character Set value as stored (terms
// separated by "\", padding trimmed). The first term sets the initial
// state; with code extensions the others are reached by escape sequences
// only. An unknown term is read as the default repertoire.
func ParseCharset(value string) Charset {
	terms := strings.Split(value, `\`)
	for i := range terms {
		terms[i] = strings.TrimSpace(terms[i])
	}
	c := Charset{g1: g1Sets[terms[0]], utf8: terms[0] == "ISO_IR 192"}
	for _, t := range terms {
		c.extension = c.extension || strings.HasPrefix(t, "ISO 2022 ")
	}
	return c
}

// Decode turns a value into UTF-8. Bytes the character set does not
// define become U+FFFD. In the default repertoire, a value that is valid
// UTF-8 is kept as it is (senders often write UTF-8 without saying so)
// and anything else is read as ISO 8859-1.
func (c Charset) Decode(s string) string {
	if c.utf8 {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	if !c.extension || !strings.Contains(s, "\x1b") {
		return decodeRun(c.g1, false, s)
	}
	var b strings.Builder
	g1, g0esc := c.g1, "" // g0esc: the JIS designation in force, if any
	for i := 0; i < len(s); {
		end := len(s)
		if j := strings.IndexByte(s[i+1:], 0x1b); j >= 0 {
			end = i + 1 + j
		}
		run := s[i:end]
		i = end
		if run[0] == 0x1b {
			// ESC, intermediate bytes 0x20-0x2F, one final byte (ISO 2022).
			n := 1
			for n < len(run) && run[n] >= 0x20 && run[n] <= 0x2f {
				n++
			}
			n = min(n+1, len(run))
			if d, ok := escapes[run[:n]]; ok && d.g0 {
				g0esc = ""
				if d.jis {
					g0esc = run[:n]
				}
			} else if ok {
				g1 = d.g1
			}
			run = run[n:]
		}
		if g0esc != "" {
			// The JIS decoder wants its designation in front.
			run = g0esc + run
		}
		b.WriteString(decodeRun(g1, g0esc != "", run))
	}
	return b.String()
}

func decodeRun(g1 textenc.Encoding, jis bool, s string) string {
	switch {
	case s == "":
		return ""
	case jis:
		g1 = japanese.ISO2022JP
	case g1 == nil && utf8.ValidString(s):
		return s
	case g1 == nil:
		g1 = charmap.ISO8859_1
	}
	out, err := g1.NewDecoder().String(s)
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return out
}
