package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/models"
)

// tinyManifest serves testdata/tiny.onnx (Y = sigmoid(flatten(X)·W + B),
// X [N,1,4,4], Y [N,3]) on CT slices shrunk to 4×4 through a brain window.
const tinyManifest = `name: tiny
version: VERSION
task: test
card: CARD.md
file: model.onnx
sha256: "SHA"
hints: {modalities: [CT]}
input: {name: x, shape: [-1, 1, 4, 4], layout: NCHW}
preprocess:
  size: [4, 4]
  resize: stretch
  channels: [{window: {center: 40, width: 400}}]
output: {name: OUTPUT, activation: none}
aggregate: max
labels:
  - {name: a, concept: {scheme: SCT, code: "1", meaning: A}, threshold: 0.5, priority: HIGH}
  - {name: b, concept: {scheme: SCT, code: "2", meaning: B}, threshold: 0.9999, priority: STAT}
  - {name: c, concept: {scheme: DCM, code: "3", meaning: C}, threshold: 0.01, priority: ROUTINE}
batching: {max_batch: 4, max_queue_delay: 1ms}
`

// tinyRepo writes a repository holding tiny.onnx under the given versions
// with output named output (a wrong name makes the graph mismatch).
func tinyRepo(t *testing.T, output string, versions ...string) string {
	t.Helper()
	onnx, err := os.ReadFile("testdata/tiny.onnx")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(onnx)
	repo := t.TempDir()
	for _, v := range versions {
		dir := filepath.Join(repo, "tiny", v)
		os.MkdirAll(dir, 0o755)
		text := strings.NewReplacer("VERSION", v, "SHA", hex.EncodeToString(sum[:]), "OUTPUT", output).Replace(tinyManifest)
		os.WriteFile(filepath.Join(dir, models.ManifestFile), []byte(text), 0o644)
		os.WriteFile(filepath.Join(dir, "model.onnx"), onnx, 0o644)
		os.WriteFile(filepath.Join(dir, "CARD.md"), []byte("test model, not for clinical use\n"), 0o644)
	}
	return repo
}

func openEngine(t *testing.T, repo string) (*Engine, []error) {
	t.Helper()
	e, errs, err := Open(Config{ModelsDir: repo, ORTLibrary: peertest.ORTLibrary(t), Threads: 1}, slog.New(slog.DiscardHandler), NewMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, errs
}

func fileSource(path string) Source {
	return Source{Name: filepath.Base(path), Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// TestRunRealModelOnRealCT: pydicom's CT_small through the preprocessing
// and a real ONNX Runtime session; the findings must equal the model's
// formula applied to the same preprocessed tensor.
func TestRunRealModelOnRealCT(t *testing.T) {
	peertest.Require(t, "pydicom")
	e, errs := openEngine(t, tinyRepo(t, "y", "1.0.0", "1.10.0", "1.9.0"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	l, ok := e.Lookup("tiny")
	if !ok || l.Version != "1.10.0" {
		t.Fatalf("Lookup(tiny) = %v, want the highest version 1.10.0", l)
	}
	ct := filepath.Join(peertest.PydicomTestFiles, "CT_small.dcm")
	notCT := filepath.Join(peertest.PydicomTestFiles, "MR_small.dcm")
	res, err := e.Run(t.Context(), "tiny@1.0.0", Stat, []Source{fileSource(ct), fileSource(notCT), {Name: "missing", Open: func() (io.ReadCloser, error) { return nil, os.ErrNotExist }}})
	if err != nil {
		t.Fatal(err)
	}
	// What the model must have answered, computed here.
	im, err := imaging.LoadFile(ct)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 16)
	if err := l.Preprocess.Apply(im, 0, x); err != nil {
		t.Fatal(err)
	}
	for j, f := range res.Findings {
		z := float64(j)/4 - 0.25
		for i := range 16 {
			z += float64(x[i]) * float64(i-8+j) / 16
		}
		want := 1 / (1 + math.Exp(-z))
		if math.Abs(f.Probability-want) > 1e-5 {
			t.Errorf("finding %s = %v, want %v", f.Label, f.Probability, want)
		}
		if f.Positive != (f.Probability >= f.Threshold) {
			t.Errorf("finding %s positive=%v at %v vs %v", f.Label, f.Positive, f.Probability, f.Threshold)
		}
	}
	if len(res.Frames) != 1 || res.Frames[0].SOPInstanceUID != im.SOPInstanceUID {
		t.Errorf("frames %+v", res.Frames)
	}
	// The MR slice does not fit a CT model; the missing file cannot open:
	// both reported, neither stops the run.
	if len(res.Errors) != 2 || !strings.Contains(res.Errors[0].Error, "modality") {
		t.Errorf("errors %+v", res.Errors)
	}
	if res.Version != "1.0.0" || res.SHA256 != l.SHA256 {
		t.Errorf("result names %s %s", res.Version, res.SHA256)
	}
	t.Logf("findings %+v timing %+v", res.Findings, res.Timing)
}

func TestSeriesAggregatesMaxInSliceOrder(t *testing.T) {
	peertest.Require(t, "pydicom")
	e, _ := openEngine(t, tinyRepo(t, "y", "1.0.0"))
	// The same slice three times: three frames, same scores, concurrently
	// batched; the study probability is their max.
	ct := filepath.Join(peertest.PydicomTestFiles, "CT_small.dcm")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			res, err := e.Run(t.Context(), "tiny", Routine, []Source{fileSource(ct), fileSource(ct), fileSource(ct)})
			if err != nil {
				t.Error(err)
				return
			}
			if len(res.Frames) != 3 {
				t.Errorf("frames %d", len(res.Frames))
				return
			}
			for k, f := range res.Findings {
				if f.Probability != res.Frames[0].Scores[k] {
					t.Errorf("%s: study %v, slice %v", f.Label, f.Probability, res.Frames[0].Scores[k])
				}
				if f.Positive && len(f.KeyFrames) != 3 {
					t.Errorf("%s positive with key frames %v", f.Label, f.KeyFrames)
				}
			}
		})
	}
	wg.Wait()
}

func TestLoadRefusesMismatch(t *testing.T) {
	// The manifest names an output the graph does not have.
	_, errs := openEngine(t, tinyRepo(t, "probabilities", "1.0.0"))
	if len(errs) != 1 || !errors.Is(errs[0], ErrGraph) {
		t.Fatalf("errors %v, want one ErrGraph", errs)
	}
	// The model file differs from its manifest's checksum.
	repo := tinyRepo(t, "y", "1.0.0")
	f, _ := os.OpenFile(filepath.Join(repo, "tiny", "1.0.0", "model.onnx"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0})
	f.Close()
	e, errs := openEngine(t, repo)
	if len(errs) != 1 || !errors.Is(errs[0], models.ErrChecksum) || len(e.Models()) != 0 {
		t.Fatalf("errors %v, models %v", errs, e.Models())
	}
	if _, err := e.Run(t.Context(), "tiny", Routine, nil); !errors.Is(err, ErrNoModel) {
		t.Fatalf("Run on a refused model: %v", err)
	}
}

func TestUnloadAndReload(t *testing.T) {
	repo := tinyRepo(t, "y", "1.0.0", "2.0.0")
	e, _ := openEngine(t, repo)
	if err := e.Unload(t.Context(), "tiny@2.0.0"); err != nil {
		t.Fatal(err)
	}
	if l, _ := e.Lookup("tiny"); l.Version != "1.0.0" {
		t.Fatalf("after unloading 2.0.0, tiny is %s", l.Version)
	}
	found, _ := models.Scan(repo)
	if err := e.Load(found[1]); err != nil {
		t.Fatal(err)
	}
	if l, _ := e.Lookup("tiny"); l.Version != "2.0.0" {
		t.Fatalf("after reloading, tiny is %s", l.Version)
	}
	if err := e.Load(found[1]); err == nil {
		t.Fatal("loading the same version twice accepted")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.2", 1}, {"1.0", "1.0.0", -1}, {"2.0.0", "2.0.0", 0}, {"1.0.0-rc1", "1.0.0-rc2", -1}, {"1.a", "1.b", -1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestReloadFollowsTheRepository(t *testing.T) {
	repo := tinyRepo(t, "y", "1.0.0")
	e, _ := openEngine(t, repo)
	// A new version appears, the old one goes.
	other := tinyRepo(t, "y", "2.0.0")
	if err := os.Rename(filepath.Join(other, "tiny", "2.0.0"), filepath.Join(repo, "tiny", "2.0.0")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(repo, "tiny", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	if errs := e.Reload(t.Context()); len(errs) > 0 {
		t.Fatal(errs)
	}
	if ms := e.Models(); len(ms) != 1 || ms[0].Version != "2.0.0" {
		t.Fatalf("after reload: %v", ms)
	}
	// A broken manifest is reported and leaves the rest alone.
	os.WriteFile(filepath.Join(repo, "tiny", "2.0.0", models.ManifestFile), []byte("name: ["), 0o644)
	if errs := e.Reload(t.Context()); len(errs) != 1 {
		t.Fatalf("reload with a broken manifest: %v", errs)
	}
	if ms := e.Models(); len(ms) != 0 {
		t.Fatalf("a version whose manifest broke is still served: %v", ms)
	}
}
