package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validManifest is a complete manifest; tests break one thing at a time.
const validManifest = `name: tiny
version: 1.0.0
task: test
manufacturer: radgate tests
card: CARD.md
file: model.onnx
sha256: "%SHA%"
hints: {modalities: [CT]}
input: {name: x, shape: [-1, 1, 4, 4], layout: NCHW}
preprocess:
  size: [4, 4]
  resize: stretch
  channels: [{window: {center: 40, width: 80}}]
output: {name: y, activation: none}
aggregate: max
labels:
  - {name: a, concept: {scheme: SCT, code: "1", meaning: A}, threshold: 0.5, priority: STAT}
  - {name: b, concept: {scheme: SCT, code: "2", meaning: B}, threshold: 0.4, priority: HIGH}
  - {name: c, concept: {scheme: DCM, code: "3", meaning: C}, threshold: 0.3, priority: ROUTINE}
batching: {max_batch: 4, max_queue_delay: 1ms}
`

// writeModel lays out REPO/NAME/VERSION with a manifest built from text
// and a model file holding content.
func writeModel(t *testing.T, repo, name, version, text string, content []byte) string {
	t.Helper()
	dir := filepath.Join(repo, name, version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	text = strings.ReplaceAll(text, "%SHA%", hex.EncodeToString(sum[:]))
	for file, b := range map[string][]byte{ManifestFile: []byte(text), "model.onnx": content, "CARD.md": []byte("not for clinical use\n")} {
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadManifestRejects(t *testing.T) {
	for name, edit := range map[string][2]string{
		"unknown key":        {"task: test", "task: test\ntaks: typo"},
		"bad name":           {"name: tiny", "name: Tiny Model"},
		"no task":            {"task: test\n", ""},
		"escaping file":      {"file: model.onnx", "file: ../model.onnx"},
		"bad sha":            {`sha256: "%SHA%"`, "sha256: abc"},
		"shape vs recipe":    {"shape: [-1, 1, 4, 4]", "shape: [-1, 3, 4, 4]"},
		"layout":             {"layout: NCHW", "layout: NHWC"},
		"activation":         {"activation: none", "activation: softmax"},
		"aggregate":          {"aggregate: max", "aggregate: mean"},
		"threshold":          {"threshold: 0.4", "threshold: 1.5"},
		"priority":           {"priority: HIGH", "priority: URGENT"},
		"repeated label":     {"name: b,", "name: a,"},
		"concept incomplete": {`code: "2", meaning: B`, `code: "", meaning: B`},
		"batch":              {"max_batch: 4", "max_batch: 0"},
		"queue delay":        {"max_queue_delay: 1ms", "max_queue_delay: 1h"},
		"recipe size":        {"size: [4, 4]", "size: [0, 4]"},
	} {
		t.Run(name, func(t *testing.T) {
			text := strings.Replace(validManifest, edit[0], edit[1], 1)
			if text == validManifest {
				t.Fatalf("edit %q not applied", edit[0])
			}
			dir := writeModel(t, t.TempDir(), "tiny", "1.0.0", text, []byte("onnx"))
			_, err := ReadManifest(filepath.Join(dir, ManifestFile))
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("ReadManifest = %v, want ErrManifest", err)
			}
		})
	}
}

func TestScanAndVerify(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "tiny", "1.0.0", validManifest, []byte("model one"))
	writeModel(t, repo, "tiny", "1.1.0", strings.Replace(validManifest, "version: 1.0.0", "version: 1.1.0", 1), []byte("model two"))
	// A manifest in the wrong folder, and an invalid one: both reported.
	writeModel(t, repo, "other", "2.0.0", validManifest, []byte("x"))
	writeModel(t, repo, "broken", "1.0.0", "name: [", nil)

	found, errs := Scan(repo)
	if len(found) != 2 || found[0].ID() != "tiny@1.0.0" || found[1].ID() != "tiny@1.1.0" {
		t.Fatalf("Scan found %v", found)
	}
	if len(errs) != 2 {
		t.Fatalf("Scan errors %v, want 2", errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrManifest) {
			t.Errorf("error %v is not ErrManifest", err)
		}
	}
	for _, m := range found {
		if err := m.Verify(); err != nil {
			t.Errorf("Verify(%s): %v", m.ID(), err)
		}
	}
	// One byte changed in the model: refused, naming both digests.
	if err := os.WriteFile(found[0].Path(), []byte("model onE"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := found[0].Verify(); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), found[0].SHA256) {
		t.Errorf("Verify after edit = %v, want ErrChecksum naming the manifest's digest", err)
	}
	os.Remove(found[1].CardPath())
	if err := found[1].Verify(); !errors.Is(err, ErrManifest) {
		t.Errorf("Verify without a card = %v", err)
	}
	if _, errs := Scan(filepath.Join(repo, "missing")); len(errs) != 1 {
		t.Errorf("Scan of a missing folder: %v", errs)
	}
}
