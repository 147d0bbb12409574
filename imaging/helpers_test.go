package imaging

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// pydicomFiles is where Debian's python3-pydicom keeps its test images.
const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// needPeer skips, or fails when RADGATE_REQUIRE_PEERS=1, for a missing
// outside tool or data set.
func needPeer(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("RADGATE_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s is required (RADGATE_REQUIRE_PEERS=1): %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// pydicomFile returns the path of a pydicom test file, or skips.
func pydicomFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(pydicomFiles, name)
	_, err := os.Stat(p)
	needPeer(t, "python3-pydicom test files", err)
	return p
}

// chestCR returns testdata/4.dcm of github.com/suyashkumar/dicom@v1.1.0:
// a real CR chest radiograph, 2140×1760, MONOCHROME1.
func chestCR(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	needPeer(t, "go env GOMODCACHE", err)
	p := filepath.Join(strings.TrimSpace(string(out)), "github.com/suyashkumar/dicom@v1.1.0/testdata/4.dcm")
	_, err = os.Stat(p)
	needPeer(t, "suyashkumar/dicom v1.1.0 module testdata", err)
	return p
}

// elem is one data element for the test builder.
type elem struct {
	group, element uint16
	vr             string
	value          []byte
}

func str(g, e uint16, vr, s string) elem {
	if len(s)%2 == 1 {
		if vr == "UI" {
			s += "\x00"
		} else {
			s += " "
		}
	}
	return elem{g, e, vr, []byte(s)}
}

func us(g, e uint16, v uint16) elem {
	return elem{g, e, "US", binary.LittleEndian.AppendUint16(nil, v)}
}

// part10 encodes a Part 10 stream: preamble, DICM, a file meta group with
// the transfer syntax, then elems in explicit VR little endian sorted by
// tag, then rawTail verbatim (an encapsulated Pixel Data element).
func part10(ts string, rawTail []byte, elems ...elem) []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	var meta bytes.Buffer
	writeElem(&meta, str(0x0002, 0x0010, "UI", ts))
	writeElem(&b, elem{0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(meta.Len()))})
	b.Write(meta.Bytes())
	sort.Slice(elems, func(i, j int) bool {
		return uint32(elems[i].group)<<16|uint32(elems[i].element) < uint32(elems[j].group)<<16|uint32(elems[j].element)
	})
	for _, e := range elems {
		writeElem(&b, e)
	}
	b.Write(rawTail)
	return b.Bytes()
}

// writeElem writes one explicit VR little endian element (PS3.5 7.1.2).
func writeElem(b *bytes.Buffer, e elem) {
	b.Write(binary.LittleEndian.AppendUint16(nil, e.group))
	b.Write(binary.LittleEndian.AppendUint16(nil, e.element))
	b.WriteString(e.vr)
	switch e.vr {
	case "OB", "OW", "SQ", "UN", "UT":
		b.Write([]byte{0, 0})
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(e.value))))
	default:
		b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(e.value))))
	}
	b.Write(e.value)
}

// mono16 returns the elements of a rows×cols 16-bit MONOCHROME2 CT image
// with the given stored words.
func mono16(rows, cols, bitsStored, highBit, pixelRep int, words []uint16, extra ...elem) []elem {
	px := make([]byte, 0, 2*len(words))
	for _, w := range words {
		px = binary.LittleEndian.AppendUint16(px, w)
	}
	return append([]elem{
		str(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2"),
		str(0x0008, 0x0018, "UI", "1.2.3.4"),
		str(0x0008, 0x0060, "CS", "CT"),
		us(0x0028, 0x0002, 1),
		str(0x0028, 0x0004, "CS", "MONOCHROME2"),
		us(0x0028, 0x0010, uint16(rows)),
		us(0x0028, 0x0011, uint16(cols)),
		us(0x0028, 0x0100, 16),
		us(0x0028, 0x0101, uint16(bitsStored)),
		us(0x0028, 0x0102, uint16(highBit)),
		us(0x0028, 0x0103, uint16(pixelRep)),
		{0x7FE0, 0x0010, "OW", px},
	}, extra...)
}
