package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/models"
)

// modelSettings points a subcommand at the repository's reference models
// and the ONNX Runtime library.
func modelSettings(t *testing.T) []string {
	t.Helper()
	dir, err := peertest.ModelsDir()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--models-dir", dir, "--ort-lib", peertest.ORTLibrary(t), "--log-level", "error"}
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestModelsListAndVerify(t *testing.T) {
	set := modelSettings(t)
	code, out, errOut := runCmd(t, append([]string{"models", "list"}, set...)...)
	if code != 0 || !strings.Contains(out, "cxr-triage") || !strings.Contains(out, "ct-ich") {
		t.Fatalf("models list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, append([]string{"models", "verify"}, set...)...)
	if code != 0 || strings.Count(out, "ok ") != 2 || !strings.Contains(out, "graph matches manifest") {
		t.Fatalf("models verify: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "models", "list", "--models-dir", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no models") {
		t.Fatalf("models list of an empty folder: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCmd(t, "models", "frobnicate"); code != 2 {
		t.Fatalf("models frobnicate: exit %d", code)
	}
}

// TestInferPhantomSeries: a positive head CT phantom written by `radgate
// phantom` and read back by `radgate infer` gives one series result with
// per-slice scores in slice order, the STAT priority and a timing
// breakdown.
func TestInferPhantomSeries(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, "phantom", "--kind", "ct-head", "--finding", "hemorrhage", "--seed", "900777", "--slices", "16", "--out", dir); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := runCmd(t, append([]string{"infer", "--model", "ct-ich", "--priority", "stat", dir}, modelSettings(t)...)...)
	if code != 0 {
		t.Fatalf("infer: exit %d: %s", code, errOut)
	}
	var res inference.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("infer output is not one JSON result: %v\n%s", err, out)
	}
	if res.Model != "ct-ich" || len(res.Frames) != 16 || len(res.Findings) != 1 {
		t.Fatalf("result %+v", res)
	}
	for i, f := range res.Frames {
		if f.InstanceNumber != i+1 {
			t.Errorf("frame %d is instance %d: not in slice order", i, f.InstanceNumber)
		}
	}
	f := res.Findings[0]
	t.Logf("hemorrhage p=%.3f positive=%v key slices %v; priority %s", f.Probability, f.Positive, f.KeyFrames, res.Priority)
	if f.Positive != (res.Priority == "STAT") {
		t.Errorf("positive %v but priority %s", f.Positive, res.Priority)
	}
	for _, k := range []string{`"decode_ms"`, `"preprocess_ms"`, `"queue_ms"`, `"inference_ms"`} {
		if !strings.Contains(out, k) {
			t.Errorf("output lacks %s", k)
		}
	}
	// Not a CT model's input: reported per instance, exit 1.
	code, out, errOut = runCmd(t, append([]string{"infer", "--model", "cxr-triage", dir}, modelSettings(t)...)...)
	if code != 1 || !strings.Contains(errOut+out, "modality") {
		t.Errorf("cxr-triage on CT: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCmd(t, append([]string{"infer", "--model", "nonesuch", dir}, modelSettings(t)...)...); code != 1 {
		t.Errorf("unknown model: exit %d", code)
	}
	if code, _, _ := runCmd(t, "infer", dir); code != 2 {
		t.Errorf("infer without --model: exit %d", code)
	}
}

// TestTensorsMatchServing: the tensors training reads are the ones
// serving computes — the same bytes of preprocessing for the same phantom.
func TestTensorsMatchServing(t *testing.T) {
	root, err := peertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	manifest := filepath.Join(root, "models", "train", "ct-ich.yaml")
	code, _, errOut := runCmd(t, "tensors", "--manifest", manifest, "--phantoms", "ct-head", "--seeds", "3-3", "--slices", "4", "--out", out)
	if code != 0 {
		t.Fatal(errOut)
	}
	var meta tensorsMeta
	b, _ := os.ReadFile(filepath.Join(out, "meta.json"))
	if err := json.Unmarshal(b, &meta); err != nil || meta.Count != 4 {
		t.Fatalf("meta %s: %v", b, err)
	}
	x, _ := os.ReadFile(filepath.Join(out, "x.f32"))
	y, _ := os.ReadFile(filepath.Join(out, "y.f32"))
	per := 3 * 128 * 128
	if len(x) != 4*per*4 || len(y) != 4*4 {
		t.Fatalf("x %d bytes, y %d bytes", len(x), len(y))
	}
	// Seed 3 is odd: the hemorrhage phantom; y is 1 exactly on the
	// positive slices (items.jsonl says which).
	items, _ := os.ReadFile(filepath.Join(out, "items.jsonl"))
	for i, line := range strings.Split(strings.TrimSpace(string(items)), "\n") {
		yv := math.Float32frombits(binary.LittleEndian.Uint32(y[4*i:]))
		if strings.Contains(line, `"positive":true`) != (yv == 1) {
			t.Errorf("item %d: %s but y=%v", i, line, yv)
		}
	}
	// Serving the same phantom slice: the same tensor.
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, "phantom", "--kind", "ct-head", "--finding", "hemorrhage", "--seed", "3", "--slices", "4", "--out", dir); code != 0 {
		t.Fatal(errOut)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	w, err := newTensorWriter(t.TempDir(), manifest, mustManifest(t, manifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := fileTensors(t.Context(), w, files[:1], newTicker(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	w.close()
	again, _ := os.ReadFile(filepath.Join(w.dir, "x.f32"))
	if !bytes.Equal(again, x[:per*4]) {
		t.Error("the tensor of slice 1 read from its DICOM file differs from the one written from the phantom")
	}
}

func mustManifest(t *testing.T, path string) models.Manifest {
	t.Helper()
	m, err := models.ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
