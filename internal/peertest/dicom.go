package peertest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// Dump is a file's data set as dcmdump prints it, normalised by Normalise,
// and the transfer syntax it was encoded in.
type Dump struct {
	Text           string // normalised data set lines, joined by "\n"
	TransferSyntax string // dcmdump's name of (0002,0010), e.g. "JPEG2000"
	SOPClass       string // dcmdump's name of (0008,0016), e.g. "CTImageStorage"
	SOPInstanceUID string
}

// DumpDataset runs `dcmdump -q +L FILE` (every value printed in full) and
// normalises the output. It fails when dcmdump cannot parse the whole file.
func DumpDataset(ctx context.Context, file string) (Dump, error) {
	bin, err := Tool("dcmdump")
	if err != nil {
		return Dump{}, err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-q", "+L", file)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		// -q hides the reason; ask again without it.
		b, _ := exec.CommandContext(ctx, bin, file).CombinedOutput()
		return Dump{}, fmt.Errorf("dcmdump %s: %v: %s", file, err, lastLines(string(b), 3))
	}
	d := Dump{Text: Normalise(out.String())}
	for _, line := range strings.Split(out.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "(0002,0010) UI ="):
			d.TransferSyntax = firstField(strings.TrimPrefix(line, "(0002,0010) UI ="))
		case strings.HasPrefix(line, "(0008,0016) UI ="):
			d.SOPClass = firstField(strings.TrimPrefix(line, "(0008,0016) UI ="))
		case strings.HasPrefix(line, "(0008,0018) UI ["):
			rest := strings.TrimPrefix(line, "(0008,0018) UI [")
			if i := strings.IndexByte(rest, ']'); i >= 0 {
				d.SOPInstanceUID = rest[:i]
			}
		}
	}
	return d, nil
}

var (
	tagRE = regexp.MustCompile(`^\s*\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\)`)
	// "(Sequence with undefined length #=2)", "(Item with explicit length #=5)"
	lengthKindRE = regexp.MustCompile(`\((Sequence|Item) with (?:undefined|explicit) length #=(\d+)\)`)
	// the "# length, VM Keyword" comment that ends each element line
	lengthCommentRE = regexp.MustCompile(`#\s*(?:u/l|\d+),\s*(\d+)\s+(\S+)$`)
	padRE           = regexp.MustCompile(`(\S) {2,}#`)
)

// Normalise reduces dcmdump output to the data set's content, removing only
// what a sender or receiver may legitimately change without changing the data
// set — each rule found by sending the pydicom files through DCMTK's storescu
// to a bit-preserving storescp:
//
//   - the File Meta Information (group 0002) and dcmdump's comment and blank
//     lines: each receiver writes its own meta header (implementation class,
//     source AE, group length); the transfer syntax is compared apart;
//   - group length elements (gggg,0000): retired in the data set (PS3.5
//     7.2), recalculated by storescu when it sends;
//   - data set trailing padding (fffc,fffc): storescu drops it (PS3.10
//     7.2 lets any application remove it);
//   - the encoding of sequence and item lengths — undefined length with
//     delimitation items, or explicit length (PS3.5 7.5): storescu
//     re-encodes them; "(Sequence with undefined length #=2)" and
//     "(Sequence with explicit length #=2)" both become "(Sequence #=2)",
//     and the (fffe,e00d)/(fffe,e0dd) delimitation lines go;
//   - the value length column: storescu trims the padding of string values
//     it sends (SC_rgb_gdcm_KY's ImageType goes from 26 to 24 bytes); values
//     are printed in full (+L), so they are compared as dcmdump prints them,
//     with their VM;
//   - the run of spaces dcmdump pads values with before the "#" comment.
//
// Everything else — each element's tag, VR, value in full, VM, nesting,
// encapsulated fragments byte for byte — must match.
func Normalise(dump string) string {
	lines := strings.Split(dump, "\n")
	if i := indexLine(lines, "# Dicom-Data-Set"); i >= 0 {
		lines = lines[i+1:]
	}
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if m := tagRE.FindStringSubmatch(line); m != nil {
			group, elem := strings.ToLower(m[1]), strings.ToLower(m[2])
			switch {
			case group == "0002":
				continue
			case elem == "0000" && group != "fffe":
				continue
			case group == "fffc" && elem == "fffc":
				continue
			case group == "fffe" && (elem == "e00d" || elem == "e0dd"):
				continue
			}
		}
		line = lengthKindRE.ReplaceAllString(line, "($1 #=$2)")
		line = lengthCommentRE.ReplaceAllString(strings.TrimRight(line, " "), "# $1 $2")
		line = padRE.ReplaceAllString(line, "$1 #")
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// DiffLines returns a short report of the first lines where a and b differ,
// for failure messages ("" when equal).
func DiffLines(a, b string, max int) string {
	if a == b {
		return ""
	}
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var sb strings.Builder
	n := 0
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x == y {
			continue
		}
		fmt.Fprintf(&sb, "line %d:\n  - %s\n  + %s\n", i+1, clip(x, 200), clip(y, 200))
		if n++; n >= max {
			fmt.Fprintf(&sb, "  (stopping after %d differing lines; %d vs %d lines in all)\n", max, len(la), len(lb))
			break
		}
	}
	return sb.String()
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func indexLine(lines []string, s string) int {
	for i, l := range lines {
		if strings.TrimSpace(l) == s {
			return i
		}
	}
	return -1
}

func firstField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Probe is what ProbeFile reads from a file.
type Probe struct {
	SOPInstanceUID  string
	PixelDataLength int64 // -1 when there is no (native) pixel data
}

var hashLengthRE = regexp.MustCompile(`#\s*(\d+),`)

// ProbeFile reads the whole file with dcmdump (so a truncated file fails)
// but prints only the SOP Instance UID and the pixel data's length: a cheap
// integrity check for large files.
func ProbeFile(ctx context.Context, file string) (Probe, error) {
	bin, err := Tool("dcmdump")
	if err != nil {
		return Probe{}, err
	}
	out, err := exec.CommandContext(ctx, bin, "-q", "+P", "0008,0018", "+P", "7fe0,0010", file).Output()
	if err != nil {
		b, _ := exec.CommandContext(ctx, bin, file).CombinedOutput()
		return Probe{}, fmt.Errorf("dcmdump %s: %v: %s", file, err, lastLines(string(b), 3))
	}
	// +P prints matches at every nesting level, unindented: the top-level
	// SOP Instance UID comes first (nested ones sit in sequences with larger
	// tags), the top-level pixel data last (an icon's is nested in
	// (0088,0200)).
	p := Probe{PixelDataLength: -1}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "(0008,0018) UI [") && p.SOPInstanceUID == "":
			rest := strings.TrimPrefix(line, "(0008,0018) UI [")
			if i := strings.IndexByte(rest, ']'); i >= 0 {
				p.SOPInstanceUID = rest[:i]
			}
		case strings.HasPrefix(line, "(7fe0,0010)"):
			if m := hashLengthRE.FindStringSubmatch(line[strings.LastIndexByte(line, '#'):]); m != nil {
				fmt.Sscan(m[1], &p.PixelDataLength)
			}
		}
	}
	return p, nil
}
