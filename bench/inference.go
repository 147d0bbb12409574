package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/phantom"
)

// Targets from issue 3.
const targetInferRatio = 0.95 // radgate in-process items/s ÷ onnxruntime-node items/s

// The Node baseline: the same ONNX Runtime build radgate fetches.
const ortNodePackage = "onnxruntime-node@1.30.0"

// inferReport is the inference half of `make bench`.
type inferReport struct {
	Threads    int                `json:"threads"`
	Throughput []inferRow         `json:"throughput"`
	Batching   []inferRow         `json:"batching"`
	Stat       *statRow           `json:"stat_under_flood,omitempty"`
	Preprocess map[string]float64 `json:"preprocess_ms"`
	Memory     *memoryRow         `json:"memory,omitempty"`
}

// inferRow is one throughput measurement.
type inferRow struct {
	Model       string  `json:"model"`
	Path        string  `json:"path"` // "onnxruntime-node" or "radgate"
	Batch       int     `json:"batch"`
	Concurrency int     `json:"concurrency"`
	ItemsPerSec float64 `json:"items_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	// All are every repetition's items/s; ItemsPerSec is their median.
	All []float64 `json:"all_items_per_s,omitempty"`
}

type statRow struct {
	RoutineItemsPerSec float64 `json:"routine_items_per_s"`
	StatJobs           int     `json:"stat_jobs"`
	StatWaitP50ms      float64 `json:"stat_queue_wait_p50_ms"`
	StatWaitP99ms      float64 `json:"stat_queue_wait_p99_ms"`
	StatWaitMaxms      float64 `json:"stat_queue_wait_max_ms"`
	RoutineWaitP50ms   float64 `json:"routine_queue_wait_p50_ms"`
}

type memoryRow struct {
	Requests     int   `json:"requests"`
	RSSAfter500  int64 `json:"rss_after_500_bytes"`
	RSSAfterAll  int64 `json:"rss_after_all_bytes"`
	PeakRSS      int64 `json:"peak_rss_bytes"`
	ModelsLoaded int   `json:"models_loaded"`
}

// benchModels are the realistic-size models bench/models.py writes.
var benchModels = []struct {
	name    string
	c, h, w int
}{
	{"densenet121-cxr", 1, 224, 224},
	{"resnet18-ct", 3, 256, 256},
}

func (b *bench) runInference(ctx context.Context, seconds float64, repeat int) (*inferReport, error) {
	threads := runtime.NumCPU()
	rep := &inferReport{Threads: threads, Preprocess: map[string]float64{}}
	repo := filepath.Join(b.o.out, "cache", "bench-models")
	if _, err := os.Stat(filepath.Join(repo, benchModels[1].name, "1.0.0", models.ManifestFile)); err != nil {
		progress("writing the benchmark models (DenseNet-121, ResNet-18) into %s…", repo)
		if err := b.command(ctx, "bench-models", "/usr/bin/python3", "bench/models.py", repo); err != nil {
			return nil, fmt.Errorf("bench/models.py (needs python3-torch, python3-torchvision, python3-onnx): %w", err)
		}
	}
	nodeDir := filepath.Join(b.o.out, "cache", "ort-node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "onnxruntime-node")); err != nil {
		progress("installing %s for the Node baseline…", ortNodePackage)
		if err := b.command(ctx, "npm", "npm", "install", "--silent", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", nodeDir, ortNodePackage); err != nil {
			return nil, err
		}
	}
	lib, err := peertest.ORTLibraryPath()
	if err != nil {
		return nil, fmt.Errorf("ONNX Runtime library: %w (run make build)", err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, errs, err := inference.Open(inference.Config{ModelsDir: repo, ORTLibrary: lib, Threads: threads}, log, nil)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	if len(errs) > 0 {
		return nil, fmt.Errorf("benchmark models: %v", errs)
	}

	// Throughput at batch 1, Node and radgate alternating, repeated.
	for _, m := range benchModels {
		var node, rg []inferRow
		for r := range repeat {
			progress("  %s batch 1: onnxruntime-node (%d/%d)…", m.name, r+1, repeat)
			n, err := b.nodeRun(ctx, nodeDir, filepath.Join(repo, m.name, "1.0.0", "model.onnx"), m.c, m.h, m.w, 1, seconds, threads)
			if err != nil {
				return nil, err
			}
			node = append(node, n)
			progress("  %s batch 1: radgate in process (%d/%d)…", m.name, r+1, repeat)
			rg = append(rg, engineRun(ctx, eng, m.name, m.c, m.h, m.w, 1, seconds))
		}
		rep.Throughput = append(rep.Throughput, medianRow(node), medianRow(rg))
	}
	// Dynamic batching: the CT model with 8 concurrent single-slice
	// requests (batched by the scheduler) against one at a time.
	ct := benchModels[1]
	progress("  %s: dynamic batching, 8 concurrent requests…", ct.name)
	seq := engineRun(ctx, eng, ct.name, ct.c, ct.h, ct.w, 1, seconds)
	batched := engineRun(ctx, eng, ct.name, ct.c, ct.h, ct.w, 8, seconds)
	rep.Batching = []inferRow{seq, batched}

	if err := preprocessTimes(rep, repo); err != nil {
		return nil, err
	}
	refDir, err := peertest.ModelsDir()
	if err != nil {
		return nil, err
	}
	ref, errs, err := inference.Open(inference.Config{ModelsDir: refDir, ORTLibrary: lib, Threads: threads}, log, nil)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	if len(errs) > 0 || len(ref.Models()) < 2 {
		return nil, fmt.Errorf("reference models: %d loaded, errors %v", len(ref.Models()), errs)
	}
	progress("  STAT ct-ich jobs under a flood of routine cxr-triage requests…")
	rep.Stat = statUnderFlood(ctx, ref, seconds*2)
	progress("  memory over 10,000 requests with both reference models loaded…")
	rep.Memory = memoryRun(ctx, ref, 10000)
	return rep, nil
}

func (b *bench) command(ctx context.Context, logName, name string, args ...string) error {
	root, err := peertest.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	os.WriteFile(filepath.Join(b.logs, logName+".log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("%s %s: %v (log: %s)", name, strings.Join(args, " "), err, filepath.Join(b.logs, logName+".log"))
	}
	return nil
}

func (b *bench) nodeRun(ctx context.Context, nodeDir, model string, c, h, w, batch int, seconds float64, threads int) (inferRow, error) {
	root, err := peertest.RepoRoot()
	if err != nil {
		return inferRow{}, err
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "bench", "ort-node.js"), model,
		strconv.Itoa(c), strconv.Itoa(h), strconv.Itoa(w), strconv.Itoa(batch), fmt.Sprint(seconds), strconv.Itoa(threads))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(nodeDir, "node_modules"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return inferRow{}, fmt.Errorf("node ort-node.js: %v: %s", err, stderr.String())
	}
	var r struct {
		ItemsPerS float64 `json:"items_per_s"`
		P50       float64 `json:"p50_ms"`
		P99       float64 `json:"p99_ms"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return inferRow{}, fmt.Errorf("node ort-node.js output %q: %v", out, err)
	}
	return inferRow{Model: filepath.Base(filepath.Dir(filepath.Dir(model))), Path: "onnxruntime-node", Batch: batch, Concurrency: 1,
		ItemsPerSec: r.ItemsPerS, P50ms: r.P50, P99ms: r.P99}, nil
}

// engineRun drives the engine's scheduler — the path every radgate
// request takes — with concurrency requests of one random item each in
// flight, for about seconds after a warm-up.
func engineRun(ctx context.Context, eng *inference.Engine, model string, c, h, w, concurrency int, seconds float64) inferRow {
	x := make([]float32, c*h*w)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = rng.Float32() - 0.5
	}
	in := []inference.Tensor{{Shape: []int64{1, int64(c), int64(h), int64(w)}, Data: x}}
	l, _ := eng.Lookup(model)
	for range 3 {
		eng.Scheduler().Infer(ctx, l.ID(), inference.Routine, in)
	}
	var (
		mu  sync.Mutex
		lat []float64
		wg  sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(time.Duration(seconds * float64(time.Second)))
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if _, _, err := eng.Scheduler().Infer(ctx, l.ID(), inference.Routine, in); err != nil {
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, float64(d.Microseconds())/1000)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	slices.Sort(lat)
	return inferRow{Model: model, Path: "radgate", Batch: 1, Concurrency: concurrency,
		ItemsPerSec: float64(len(lat)) / elapsed, P50ms: pct(lat, 50), P99ms: pct(lat, 99)}
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p/100*float64(len(sorted))))]
}

func medianRow(rows []inferRow) inferRow {
	s := slices.Clone(rows)
	slices.SortFunc(s, func(a, b inferRow) int {
		switch {
		case a.ItemsPerSec < b.ItemsPerSec:
			return -1
		case a.ItemsPerSec > b.ItemsPerSec:
			return 1
		}
		return 0
	})
	m := s[len(s)/2]
	for _, r := range rows {
		m.All = append(m.All, r.ItemsPerSec)
	}
	return m
}

// preprocessTimes: the median time of the recipe on a 512² head CT slice
// (the CT benchmark model's 3 windows, 256²) and on the real 2140×1760 CR
// (the DenseNet's 224² letterbox), decoded once.
func preprocessTimes(rep *inferReport, repo string) error {
	ctInst, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 7, Slices: 1})
	if err != nil {
		return err
	}
	ctImg, err := imaging.Load(bytes.NewReader(ctInst[0].Data))
	if err != nil {
		return err
	}
	cr, err := peertest.RealChestRadiograph()
	if err != nil {
		return err
	}
	crImg, err := imaging.LoadFile(cr)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		key   string
		model string
		im    *imaging.Image
	}{
		{"ct_512_slice_to_3x256", "resnet18-ct", ctImg},
		{"cr_2140x1760_to_1x224", "densenet121-cxr", crImg},
	} {
		m, err := models.ReadManifest(filepath.Join(repo, c.model, "1.0.0", models.ManifestFile))
		if err != nil {
			return err
		}
		dst := make([]float32, m.Preprocess.Len())
		var ts []float64
		for range 21 {
			t0 := time.Now()
			if err := m.Preprocess.Apply(c.im, 0, dst); err != nil {
				return err
			}
			ts = append(ts, float64(time.Since(t0).Microseconds())/1000)
		}
		slices.Sort(ts)
		rep.Preprocess[c.key] = ts[len(ts)/2]
	}
	return nil
}

// statUnderFlood keeps 16 routine chest X-ray requests in flight and
// every 200 ms submits a STAT head CT series of 16 slices, recording how
// long each STAT slice waited in the queue.
func statUnderFlood(ctx context.Context, eng *inference.Engine, seconds float64) *statRow {
	cxr, _ := eng.Lookup("cxr-triage")
	ct, _ := eng.Lookup("ct-ich")
	item := func(m models.Manifest) []inference.Tensor {
		shape := append([]int64{1}, m.ItemShape()...)
		return []inference.Tensor{{Shape: shape, Data: make([]float32, m.Preprocess.Len())}}
	}
	cxrIn, ctIn := item(cxr.Manifest), item(ct.Manifest)
	fctx, stop := context.WithTimeout(ctx, time.Duration(seconds*float64(time.Second)))
	defer stop()
	var (
		routine   atomic.Int64
		mu        sync.Mutex
		statWaits []float64
		routWaits []float64
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for fctx.Err() == nil {
				_, t, err := eng.Scheduler().Infer(fctx, cxr.ID(), inference.Routine, cxrIn)
				if err != nil {
					continue
				}
				routine.Add(1)
				mu.Lock()
				routWaits = append(routWaits, float64(t.Queue.Microseconds())/1000)
				mu.Unlock()
			}
		})
	}
	jobs := 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for fctx.Err() == nil {
		select {
		case <-tick.C:
		case <-fctx.Done():
			continue
		}
		jobs++
		var jw sync.WaitGroup
		for range 16 {
			jw.Go(func() {
				_, t, err := eng.Scheduler().Infer(ctx, ct.ID(), inference.Stat, ctIn)
				if err == nil {
					mu.Lock()
					statWaits = append(statWaits, float64(t.Queue.Microseconds())/1000)
					mu.Unlock()
				}
			})
		}
		jw.Wait()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	slices.Sort(statWaits)
	slices.Sort(routWaits)
	return &statRow{
		RoutineItemsPerSec: float64(routine.Load()) / elapsed, StatJobs: jobs,
		StatWaitP50ms: pct(statWaits, 50), StatWaitP99ms: pct(statWaits, 99), StatWaitMaxms: pct(statWaits, 100),
		RoutineWaitP50ms: pct(routWaits, 50),
	}
}

// memoryRun sends n requests alternating between the two reference models
// and reads the process's resident set after 500 and after all of them.
func memoryRun(ctx context.Context, eng *inference.Engine, n int) *memoryRow {
	ms := eng.Models()
	row := &memoryRow{Requests: n, ModelsLoaded: len(ms)}
	inputs := make([][]inference.Tensor, len(ms))
	for i, m := range ms {
		inputs[i] = []inference.Tensor{{Shape: append([]int64{1}, m.ItemShape()...), Data: make([]float32, m.Preprocess.Len())}}
	}
	for i := range n {
		k := i % len(ms)
		eng.Scheduler().Infer(ctx, ms[k].ID(), inference.Routine, inputs[k])
		if i == 499 {
			row.RSSAfter500 = procStatus("VmRSS")
		}
	}
	row.RSSAfterAll, row.PeakRSS = procStatus("VmRSS"), procStatus("VmHWM")
	return row
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// inferenceRatios adds the inference figures issue 3 sets targets for.
func inferenceRatios(rep *report) {
	ir := rep.Inference
	if ir == nil {
		return
	}
	for _, m := range benchModels {
		var node, rg *inferRow
		for i := range ir.Throughput {
			r := &ir.Throughput[i]
			if r.Model == m.name && r.Path == "onnxruntime-node" {
				node = r
			} else if r.Model == m.name {
				rg = r
			}
		}
		if node != nil && rg != nil && node.ItemsPerSec > 0 {
			k := m.name + "_radgate_over_onnxruntime_node"
			v := round(rg.ItemsPerSec/node.ItemsPerSec, 3)
			rep.Ratios[k] = v
			rep.Verdicts[k] = verdict(v >= targetInferRatio, fmt.Sprintf("target ≥ %.2f", targetInferRatio))
		}
	}
	if len(ir.Batching) == 2 && ir.Batching[0].ItemsPerSec > 0 {
		rep.Ratios["ct_dynamic_batching_speedup"] = round(ir.Batching[1].ItemsPerSec/ir.Batching[0].ItemsPerSec, 2)
	}
	if ir.Memory != nil && ir.Memory.RSSAfter500 > 0 {
		rep.Ratios["rss_growth_500_to_10000_requests_mib"] = round(float64(ir.Memory.RSSAfterAll-ir.Memory.RSSAfter500)/(1<<20), 1)
	}
}

func printInference(w io.Writer, rep *report) {
	ir := rep.Inference
	if ir == nil {
		return
	}
	fmt.Fprintf(w, "\nradgate inference benchmark — %d intra-op threads for both; the same libonnxruntime.so.1 (1.30.0); random-weight models\n\n", ir.Threads)
	fmt.Fprintf(w, "%-18s %-18s %6s %12s %12s %9s %9s\n", "model", "path", "batch", "concurrency", "items/s", "p50 ms", "p99 ms")
	for _, r := range append(slices.Clone(ir.Throughput), ir.Batching...) {
		fmt.Fprintf(w, "%-18s %-18s %6d %12d %12.2f %9.1f %9.1f\n", r.Model, r.Path, r.Batch, r.Concurrency, r.ItemsPerSec, r.P50ms, r.P99ms)
	}
	for k, v := range ir.Preprocess {
		fmt.Fprintf(w, "  preprocessing %-42s %8.2f ms\n", k, v)
	}
	if s := ir.Stat; s != nil {
		fmt.Fprintf(w, "  STAT ct-ich (16 slices every 200 ms) under 16 routine cxr-triage in flight: %d jobs, queue wait p50 %.1f ms, p99 %.1f ms, max %.1f ms (routine p50 %.1f ms, %.0f routine items/s)\n",
			s.StatJobs, s.StatWaitP50ms, s.StatWaitP99ms, s.StatWaitMaxms, s.RoutineWaitP50ms, s.RoutineItemsPerSec)
	}
	if m := ir.Memory; m != nil {
		fmt.Fprintf(w, "  memory, %d models loaded, %d requests: RSS %.1f MiB after 500, %.1f MiB after all, peak %.1f MiB\n",
			m.ModelsLoaded, m.Requests, float64(m.RSSAfter500)/(1<<20), float64(m.RSSAfterAll)/(1<<20), float64(m.PeakRSS)/(1<<20))
	}
}
