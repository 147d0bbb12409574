package models_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/phantom"
)

// heldOutSeed is the first seed of the evaluation phantoms: training uses
// seeds from 1 and validation from 100001 (models/train/train.py), so
// these were never seen.
const heldOutSeed = 900001

// minBalancedAccuracy: the reference models must have learnt their
// finding on phantoms, well above chance (0.5). This is about the
// phantoms, not medicine.
const minBalancedAccuracy = 0.75

// TestReferenceModelCards: every committed model says what it is.
func TestReferenceModelCards(t *testing.T) {
	found, errs := models.Scan(".")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(found) < 2 {
		t.Fatalf("found %d reference models, want cxr-triage and ct-ich", len(found))
	}
	for _, m := range found {
		if err := m.Verify(); err != nil {
			t.Error(err)
		}
		card, err := os.ReadFile(m.CardPath())
		if err != nil || !bytes.Contains(card, []byte("trained on synthetic phantoms — not for clinical use")) &&
			!bytes.Contains(card, []byte("Trained on synthetic phantoms — not for clinical use")) {
			t.Errorf("%s: model card must say it is trained on synthetic phantoms — not for clinical use (%v)", m.ID(), err)
		}
	}
}

// TestReferenceModels runs each reference model on phantoms it never saw,
// heldOutCount positive and heldOutCount negative studies, through the
// whole serving path (DICOM bytes → imaging → scheduler → ONNX Runtime),
// and reports sensitivity and specificity per study.
func TestReferenceModels(t *testing.T) {
	if heldOutCount == 0 {
		t.Skip("race detector on: the held-out evaluation runs without it (make test runs it so)")
	}
	e, errs, err := inference.Open(inference.Config{ModelsDir: ".", ORTLibrary: peertest.ORTLibrary(t)}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, c := range []struct {
		model     string
		kind      phantom.Kind
		positives []phantom.Finding
	}{
		{"cxr-triage", phantom.KindCXR, []phantom.Finding{phantom.Pneumothorax, phantom.Effusion}},
		{"ct-ich", phantom.KindCTHead, []phantom.Finding{phantom.Hemorrhage}},
	} {
		t.Run(c.model, func(t *testing.T) {
			tp, fn := map[phantom.Finding]int{}, map[phantom.Finding]int{}
			tn, fp := 0, 0
			for i := range 2 * heldOutCount {
				seed := uint64(heldOutSeed + i)
				finding := phantom.None
				if i%2 == 1 {
					finding = c.positives[(i/2)%len(c.positives)]
				}
				res := run(t, e, c.model, phantom.Spec{Kind: c.kind, Finding: finding, Seed: seed, Slices: 16})
				if finding == phantom.None {
					if res.Priority == "ROUTINE" && !anyPositive(res) {
						tn++
					} else {
						fp++
					}
					continue
				}
				if positive(res, string(finding)) {
					tp[finding]++
				} else {
					fn[finding]++
				}
			}
			spec := float64(tn) / float64(tn+fp)
			var sens []float64
			for _, f := range c.positives {
				s := float64(tp[f]) / float64(tp[f]+fn[f])
				sens = append(sens, s)
				t.Logf("%s %s: sensitivity %d/%d = %.2f", c.model, f, tp[f], tp[f]+fn[f], s)
			}
			t.Logf("%s: specificity %d/%d = %.2f (held-out phantom seeds %d–%d)", c.model, tn, tn+fp, spec, heldOutSeed, heldOutSeed+2*heldOutCount-1)
			for i, s := range sens {
				if (s+spec)/2 < minBalancedAccuracy {
					t.Errorf("%s %s: balanced accuracy %.2f below %.2f", c.model, c.positives[i], (s+spec)/2, minBalancedAccuracy)
				}
			}
		})
	}
}

func run(t *testing.T, e *inference.Engine, model string, s phantom.Spec) *inference.Result {
	t.Helper()
	if s.Kind == phantom.KindCXR {
		s.Slices = 0
	}
	insts, err := phantom.Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	srcs := make([]inference.Source, len(insts))
	for i, in := range insts {
		srcs[i] = inference.Source{Name: fmt.Sprintf("seed %d #%d", s.Seed, i), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(in.Data)), nil
		}}
	}
	res, err := e.Run(t.Context(), model, inference.Routine, srcs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	return res
}

func positive(r *inference.Result, label string) bool {
	for _, f := range r.Findings {
		if f.Label == label {
			return f.Positive
		}
	}
	return false
}

func anyPositive(r *inference.Result) bool {
	for _, f := range r.Findings {
		if f.Positive {
			return true
		}
	}
	return false
}

// TestRealChestRadiograph: the real CR of suyashkumar/dicom's testdata
// (2140×1760, MONOCHROME1) runs through the chest model without error.
// Its probabilities mean nothing clinically: the model knows phantoms.
func TestRealChestRadiograph(t *testing.T) {
	cr, err := peertest.RealChestRadiograph()
	if err != nil {
		t.Skipf("real radiograph not available: %v", err)
	}
	e, _, err := inference.Open(inference.Config{ModelsDir: ".", ORTLibrary: peertest.ORTLibrary(t)}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := e.Run(t.Context(), "cxr-triage", inference.Routine, []inference.Source{{Name: "4.dcm", Open: func() (io.ReadCloser, error) { return os.Open(cr) }}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 || len(res.Findings) != 2 {
		t.Fatalf("errors %v findings %v", res.Errors, res.Findings)
	}
	for _, f := range res.Findings {
		if f.Probability < 0 || f.Probability > 1 {
			t.Errorf("%s: probability %v", f.Label, f.Probability)
		}
		t.Logf("4.dcm %s p=%.3f (not clinical)", f.Label, f.Probability)
	}
	t.Logf("timing %+v", res.Timing)
}
