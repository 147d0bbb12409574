package peertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteSeries checks the generated CT series: distinct UIDs, one study,
// parseable by dcmdump, and valid for dciodvfy (no "Error -" lines).
func TestWriteSeries(t *testing.T) {
	Require(t, "dcmdump")
	ctx := context.Background()
	dir := t.TempDir()
	synth := filepath.Join(dir, "synthetic.dcm")
	if err := os.WriteFile(synth, SyntheticCT(), 0o644); err != nil {
		t.Fatal(err)
	}
	templates := map[string]string{"synthetic": synth}
	if tmpl, src, err := TemplateCT(ctx, CacheDir()); err == nil {
		t.Logf("template: %s", src)
		templates["cached"] = tmpl
	} else {
		t.Logf("no cached template: %v", err)
	}
	for name, tmpl := range templates {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			inst, err := WriteSeries(SeriesSpec{Template: tmpl, Dir: out, N: 3, Seed: "t"})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, in := range inst {
				d, err := DumpDataset(ctx, in.Path)
				if err != nil {
					t.Fatal(err)
				}
				if d.SOPInstanceUID != in.SOPInstanceUID || seen[in.SOPInstanceUID] {
					t.Errorf("%s: SOP Instance UID %q, manifest %q (or duplicate)", in.Path, d.SOPInstanceUID, in.SOPInstanceUID)
				}
				seen[in.SOPInstanceUID] = true
				if d.TransferSyntax != "LittleEndianExplicit" || d.SOPClass != "CTImageStorage" {
					t.Errorf("%s: %s %s", in.Path, d.SOPClass, d.TransferSyntax)
				}
				if in.Size < 520_000 || in.Size > 540_000 {
					t.Errorf("%s: %d bytes, want ~530 KB", in.Path, in.Size)
				}
			}
			again, err := WriteSeries(SeriesSpec{Template: tmpl, Dir: out, N: 3, Seed: "t"})
			if err != nil || again[2] != inst[2] {
				t.Errorf("second WriteSeries did not reuse the cache: %v %v", again, err)
			}
			if Missing("dciodvfy") != nil {
				return
			}
			b, _ := exec.Command("dciodvfy", inst[0].Path).CombinedOutput()
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "Error") {
					t.Errorf("dciodvfy %s: %s", name, line)
				}
			}
		})
	}
}

// TestNormalise checks that sequence length encodings, group lengths and
// delimiters normalise away and values do not.
func TestNormalise(t *testing.T) {
	a := `# Dicom-File-Format
# Dicom-Meta-Information-Header
(0002,0010) UI =LittleEndianExplicit                    #  20, 1 TransferSyntaxUID

# Dicom-Data-Set
# Used TransferSyntax: Little Endian Explicit
(0008,0000) UL 328                                      #   4, 1 GenericGroupLength
(0008,2112) SQ (Sequence with undefined length #=1)     # u/l, 1 SourceImageSequence
  (fffe,e000) na (Item with undefined length #=2)         # u/l, 1 Item
    (0008,1150) UI =CTImageStorage                          #  26, 1 ReferencedSOPClassUID
  (fffe,e00d) na (ItemDelimitationItem)                   #   0, 0 ItemDelimitationItem
(fffe,e0dd) na (SequenceDelimitationItem)               #   0, 0 SequenceDelimitationItem
`
	b := `# Dicom-Data-Set
(0008,2112) SQ (Sequence with explicit length #=1)      #  34, 1 SourceImageSequence
  (fffe,e000) na (Item with explicit length #=2)          #  26, 1 Item
    (0008,1150) UI =CTImageStorage                          #  26, 1 ReferencedSOPClassUID
`
	if d := DiffLines(Normalise(a), Normalise(b), 5); d != "" {
		t.Errorf("normalised dumps differ:\n%s", d)
	}
	c := strings.Replace(b, "=CTImageStorage", "=MRImageStorage", 1)
	if Normalise(b) == Normalise(c) {
		t.Error("a changed value normalised away")
	}
}
