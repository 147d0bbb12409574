package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/radgate/radgate/deident"
	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/models"
)

// Source is one DICOM instance to run: a name for errors (a file path, a
// store key; never patient data) and a way to read it.
type Source struct {
	Name string
	Open func() (io.ReadCloser, error)
}

// Result is a model's answer for one unit of work: a radiograph, or a
// series of CT slices.
type Result struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	Task    string `json:"task"`
	SHA256  string `json:"model_sha256"`
	// The study and series of the first instance run.
	StudyInstanceUID  string `json:"study_instance_uid"`
	SeriesInstanceUID string `json:"series_instance_uid"`
	// Priority is the highest worklist priority a positive finding sets
	// (ROUTINE when none is positive).
	Priority string     `json:"priority"`
	Findings []Finding  `json:"findings"`
	Frames   []Frame    `json:"frames,omitempty"`
	Errors   []SrcError `json:"errors,omitempty"`
	Timing   StageTimes `json:"timing"`
}

// Finding is one label's study-level answer.
type Finding struct {
	Label       string         `json:"label"`
	Concept     models.Concept `json:"concept"`
	Probability float64        `json:"probability"`
	Threshold   float64        `json:"threshold"`
	Positive    bool           `json:"positive"`
	// KeyFrames: indexes into Result.Frames of the frames at or above the
	// threshold (the key slices of a CT series).
	KeyFrames []int `json:"key_frames,omitempty"`
}

// Frame is one frame's scores; for a CT series one per slice, in slice
// order along the normal.
type Frame struct {
	SOPInstanceUID string    `json:"sop_instance_uid"`
	Frame          int       `json:"frame"`
	InstanceNumber int       `json:"instance_number"`
	Scores         []float64 `json:"scores"`
}

// SrcError is an instance that could not be run, and why.
type SrcError struct {
	Source string `json:"source"`
	Error  string `json:"error"`
}

// StageTimes is where the time went. Decode and Preprocess are summed over
// instances; Queue is the longest any frame waited; Inference is each
// frame's share of its batch's compute, summed; Total is the wall time.
type StageTimes struct {
	Decode, Preprocess, Queue, Inference, Total time.Duration
}

// MarshalJSON writes milliseconds.
func (t StageTimes) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return json.Marshal(map[string]float64{
		"decode_ms": ms(t.Decode), "preprocess_ms": ms(t.Preprocess), "queue_ms": ms(t.Queue),
		"inference_ms": ms(t.Inference), "total_ms": ms(t.Total),
	})
}

// ErrNothingRan: no source could be decoded and run.
var ErrNothingRan = errors.New("inference: no instance could be run")

// Run runs a model over sources — one radiograph, or the slices of one
// series — and aggregates the frames' scores as its manifest says.
// Instances are decoded and preprocessed one at a time and their frames
// queued as they are ready, so a long series is never held decoded in
// memory; at most two batches' worth of frames wait at once. An instance
// that cannot be decoded, or does not fit the model, is reported in
// Result.Errors and the rest still run.
func (e *Engine) Run(ctx context.Context, ref string, pri Priority, sources []Source) (*Result, error) {
	l, ok := e.Lookup(ref)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoModel, ref)
	}
	start := time.Now()
	res, err := e.run(ctx, l, pri, sources)
	if res != nil {
		res.Timing.Total = time.Since(start)
	}
	var t StageTimes
	if res != nil {
		t = res.Timing
	}
	e.metrics.studied(l.ID(), t, err)
	return res, err
}

type frameOut struct {
	hdr    *imaging.Image
	frame  int
	scores []float64
}

func (e *Engine) run(ctx context.Context, l *Loaded, pri Priority, sources []Source) (*Result, error) {
	m := l.Manifest
	res := &Result{Model: m.Name, Version: m.Version, Task: m.Task, SHA256: m.SHA256}
	var (
		mu      sync.Mutex
		outs    []frameOut
		runErr  error
		wg      sync.WaitGroup
		inQueue = make(chan struct{}, 2*m.Batching.MaxBatch)
	)
	item := m.ItemShape()
	fail := func(src string, err error) {
		mu.Lock()
		res.Errors = append(res.Errors, SrcError{Source: src, Error: err.Error()})
		mu.Unlock()
	}
	for _, src := range sources {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		im, err := load(src)
		res.Timing.Decode += time.Since(t0)
		if err != nil {
			fail(src.Name, err)
			continue
		}
		if err := fits(m, im); err != nil {
			fail(src.Name, err)
			continue
		}
		// Only pixel tensors reach a remote backend (no attribute leaves
		// the site), but pixels can carry burned-in identifying text:
		// such an image stays here (PS3.15 E.1.1; deident.SafePixels).
		if l.Remote != "" {
			if err := deident.SafePixels(im.Modality, im.SOPClassUID, im.BurnedInAnnotation); err != nil {
				fail(src.Name, fmt.Errorf("inference: not sent to the remote backend %s: %w", l.Remote, err))
				continue
			}
		}
		hdr := im.Header()
		for f := range im.Frames {
			t1 := time.Now()
			x := make([]float32, m.Preprocess.Len())
			err := m.Preprocess.Apply(im, f, x)
			res.Timing.Preprocess += time.Since(t1)
			if err != nil {
				fail(fmt.Sprintf("%s frame %d", src.Name, f), err)
				continue
			}
			select {
			case inQueue <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return nil, ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-inQueue }()
				out, t, err := e.sched.Infer(ctx, l.ID(), pri, []Tensor{{Shape: append([]int64{1}, item...), Data: x}})
				mu.Lock()
				defer mu.Unlock()
				if err == nil && len(out[0].Data) != len(m.Labels) {
					err = fmt.Errorf("%w: %s: %d outputs per item, %d labels", ErrGraph, l.ID(), len(out[0].Data), len(m.Labels))
				}
				if err != nil {
					if runErr == nil {
						runErr = err
					}
					return
				}
				res.Timing.Queue = max(res.Timing.Queue, t.Queue)
				res.Timing.Inference += t.Compute / time.Duration(t.Batch)
				outs = append(outs, frameOut{hdr: hdr, frame: f, scores: scores(m, out[0].Data)})
			})
		}
	}
	wg.Wait()
	if runErr != nil {
		return nil, runErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(outs) == 0 {
		return res, fmt.Errorf("%w (%d failed)", ErrNothingRan, len(res.Errors))
	}
	sortFrames(outs)
	aggregate(m, res, outs)
	return res, nil
}

func load(src Source) (*imaging.Image, error) {
	rc, err := src.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return imaging.Load(rc)
}

// fits checks an instance against the model's hints: a chest model is not
// run on a CT slice by mistake.
func fits(m models.Manifest, im *imaging.Image) error {
	if h := m.Hints.Modalities; len(h) > 0 && !slices.Contains(h, im.Modality) {
		return fmt.Errorf("inference: modality %q is not one %s takes (%v)", im.Modality, m.Name, h)
	}
	if h := m.Hints.SOPClasses; len(h) > 0 && !slices.Contains(h, im.SOPClassUID) {
		return fmt.Errorf("inference: SOP class %s is not one %s takes", im.SOPClassUID, m.Name)
	}
	return nil
}

// scores turns one item's outputs into probabilities.
func scores(m models.Manifest, out []float32) []float64 {
	p := make([]float64, len(out))
	for i, v := range out {
		if m.Output.Activation == "sigmoid" {
			v = sigmoid(v)
		}
		p[i] = float64(v)
	}
	return p
}

// sortFrames puts frames in slice order when the instances have a
// consistent geometry, else in instance order.
func sortFrames(outs []frameOut) {
	var hdrs []*imaging.Image
	seen := map[*imaging.Image]bool{}
	for _, o := range outs {
		if !seen[o.hdr] {
			seen[o.hdr] = true
			hdrs = append(hdrs, o.hdr)
		}
	}
	if imaging.SortSlices(hdrs) != nil {
		slices.SortStableFunc(hdrs, func(a, b *imaging.Image) int { return a.InstanceNumber - b.InstanceNumber })
	}
	rank := make(map[*imaging.Image]int, len(hdrs))
	for i, h := range hdrs {
		rank[h] = i
	}
	slices.SortStableFunc(outs, func(a, b frameOut) int {
		if a.hdr != b.hdr {
			return rank[a.hdr] - rank[b.hdr]
		}
		return a.frame - b.frame
	})
}

// aggregate combines frame scores into findings: the study's probability
// of a label is its highest frame score (for a single radiograph, its
// only one); key frames are those at or above the threshold.
func aggregate(m models.Manifest, res *Result, outs []frameOut) {
	res.Priority = models.Priorities[0]
	res.StudyInstanceUID, res.SeriesInstanceUID = outs[0].hdr.StudyInstanceUID, outs[0].hdr.SeriesInstanceUID
	for _, o := range outs {
		res.Frames = append(res.Frames, Frame{
			SOPInstanceUID: o.hdr.SOPInstanceUID, Frame: o.frame, InstanceNumber: o.hdr.InstanceNumber, Scores: o.scores,
		})
	}
	for i, lb := range m.Labels {
		f := Finding{Label: lb.Name, Concept: lb.Concept, Threshold: lb.Threshold}
		for k, o := range outs {
			f.Probability = max(f.Probability, o.scores[i])
			if o.scores[i] >= lb.Threshold {
				f.KeyFrames = append(f.KeyFrames, k)
			}
		}
		f.Positive = f.Probability >= lb.Threshold
		if f.Positive && slices.Index(models.Priorities, lb.Priority) > slices.Index(models.Priorities, res.Priority) {
			res.Priority = lb.Priority
		}
		res.Findings = append(res.Findings, f)
	}
	if m.Aggregate == "none" && len(res.Frames) == 1 {
		// One radiograph: its frame is the finding; no per-frame list.
		res.Frames = nil
		for i := range res.Findings {
			res.Findings[i].KeyFrames = nil
		}
	}
}
