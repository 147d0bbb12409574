// Command bench is radgate's ingest benchmark (`make bench`, `go run ./bench`):
// in one run, the same 500 CT instances (~530 KB each, 512×512 16-bit,
// explicit VR little endian, one study and series) are sent by DCMTK's
// storescu over loopback to
//
//	(a) storescp writing to disk (no fsync),
//	(b) Orthanc,
//	(c) radgate (fresh data directory; it fsyncs every instance before it
//	    answers),
//	(d) radgate and storescp --fork over 4 parallel associations,
//
// and then a ~2 GB study to radgate alone, for its peak memory; then the
// series by STOW-RS into radgate and into Orthanc's DICOMweb plugin, and
// back by WADO-RS (dicomweb.go). DCMTK and
// Orthanc run with TCP_NODELAY=1 and the loopback shim (LD_PRELOAD), as in
// test/peers. Each run's wall time is storescu's, from start to exit; peak
// memory is radgate's VmHWM from /proc. It prints a table and the ratios
// issue 2 sets targets for, and writes the results as JSON into -out.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
)

// Targets from issue 2.
const (
	targetTimeRatio    = 1.25 // radgate time / storescp time, one association
	targetOrthancRatio = 3.0  // radgate rate / Orthanc rate
	twoGiB             = 2 << 30
)

type options struct {
	radgate  string
	n        int
	out      string
	parallel int
	bigN     int
	skip     string
	seed     string
	repeat   int
	// inferSeconds: how long each inference throughput run lasts.
	inferSeconds float64
}

// result is one row of the table.
type result struct {
	Name         string  `json:"name"`
	Peer         string  `json:"peer"`
	Associations int     `json:"associations"`
	Files        int     `json:"files"`
	Bytes        int64   `json:"bytes"`
	Seconds      float64 `json:"seconds"`
	MBPerSec     float64 `json:"mb_per_s"`
	InstPerSec   float64 `json:"instances_per_s"`
	Arrived      int     `json:"arrived"`
	PeakRSS      int64   `json:"peak_rss_bytes,omitempty"`
	// AllSeconds are every repetition's times; Seconds is their median.
	AllSeconds []float64 `json:"all_seconds,omitempty"`
	Note       string    `json:"note,omitempty"`
}

type report struct {
	Started       time.Time          `json:"started"`
	Host          map[string]string  `json:"host"`
	Template      string             `json:"template"`
	InstanceBytes int64              `json:"instance_bytes"`
	Results       []result           `json:"results"`
	Ratios        map[string]float64 `json:"ratios"`
	Verdicts      map[string]string  `json:"verdicts"`
	Notes         []string           `json:"notes,omitempty"`
	Inference     *inferReport       `json:"inference,omitempty"`
	DICOMweb      []webResult        `json:"dicomweb,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.radgate, "radgate", "", "radgate binary (default: go build ./cmd/radgate into -out)")
	flag.IntVar(&o.n, "n", 500, "instances per run")
	flag.StringVar(&o.out, "out", filepath.Join(os.TempDir(), "radgate-bench"), "folder for generated data (cached), run data, logs and results JSON")
	flag.IntVar(&o.parallel, "parallel", 4, "associations in the parallel runs")
	flag.IntVar(&o.bigN, "big-n", 0, "instances in the large-study memory run (0: 2 GiB worth; -1: skip)")
	flag.StringVar(&o.skip, "skip", "", "comma list of runs to skip: ingest (all of it), storescp, orthanc, radgate (all its ingest runs), parallel, big, dicomweb, inference")
	flag.StringVar(&o.seed, "seed", "radgate-bench-1", "seed of the generated UIDs")
	flag.Float64Var(&o.inferSeconds, "infer-seconds", 10, "seconds per inference throughput run")
	flag.IntVar(&o.repeat, "repeat", 3, "repetitions of each 500-instance run; the table shows the median (two shared cores are noisy)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// bench holds what every run needs.
type bench struct {
	o        options
	bindlo   string
	radgate  string
	storescu string
	logs     string
	runs     string
	mu       sync.Mutex
	stoppers map[*peertest.Proc]bool
}

func (b *bench) track(p *peertest.Proc) {
	b.mu.Lock()
	b.stoppers[p] = true
	b.mu.Unlock()
}

func (b *bench) stop(p *peertest.Proc) {
	_ = p.Stop(peertest.StopTimeout)
	b.mu.Lock()
	delete(b.stoppers, p)
	b.mu.Unlock()
}

func (b *bench) stopAll() {
	b.mu.Lock()
	ps := make([]*peertest.Proc, 0, len(b.stoppers))
	for p := range b.stoppers {
		ps = append(ps, p)
	}
	b.mu.Unlock()
	for _, p := range ps {
		b.stop(p)
	}
}

func run(ctx context.Context, o options) error {
	if o.n < o.parallel || o.parallel < 1 {
		return fmt.Errorf("-n %d must be at least -parallel %d ≥ 1", o.n, o.parallel)
	}
	skip := map[string]bool{}
	for _, s := range strings.Split(o.skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			skip[s] = true
		}
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	o.out = out
	b := &bench{o: o, logs: filepath.Join(out, "logs"), runs: filepath.Join(out, "runs"), stoppers: map[*peertest.Proc]bool{}}
	defer b.stopAll()
	for _, d := range []string{b.logs, b.runs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	rep := report{Started: time.Now().UTC(), Host: hostInfo(), Ratios: map[string]float64{}, Verdicts: map[string]string{}}

	if !skip["ingest"] {
		if err := b.runIngest(ctx, &rep, skip); err != nil {
			return err
		}
	}
	if !skip["inference"] {
		progress("inference: radgate in process vs onnxruntime-node, same library and threads…")
		ir, err := b.runInference(ctx, o.inferSeconds, max(o.repeat, 1))
		if err != nil {
			return fmt.Errorf("inference: %w", err)
		}
		rep.Inference = ir
	}
	ratios(&rep)
	printReport(os.Stdout, &rep)
	return writeJSON(out, &rep)
}

// runIngest is the ingest half: storescu to storescp, Orthanc and radgate.
func (b *bench) runIngest(ctx context.Context, rep *report, skip map[string]bool) error {
	o, out := b.o, b.o.out
	var err error
	if miss := peertest.Missing("storescu", "storescp", "cc"); len(miss) > 0 {
		return fmt.Errorf("missing %s (run scripts/test-deps.sh as root)", strings.Join(miss, ", "))
	}
	if b.storescu, err = peertest.Tool("storescu"); err != nil {
		return err
	}
	if b.bindlo, err = peertest.BuildBindlo(peertest.CacheDir()); err != nil {
		return err
	}
	if !skip["orthanc"] && len(peertest.Missing("Orthanc")) > 0 {
		rep.Notes = append(rep.Notes, "Orthanc not installed: its run is skipped")
		skip["orthanc"] = true
	}
	if skip["radgate"] {
		// nothing to build
	} else if o.radgate == "" {
		progress("building radgate (go build ./cmd/radgate)…")
		if b.radgate, err = peertest.BuildRadgate(out); err != nil {
			return err
		}
	} else if b.radgate, err = filepath.Abs(o.radgate); err != nil {
		return err
	}

	progress("preparing %d CT instances…", o.n)
	tmpl, src, err := peertest.TemplateCT(ctx, filepath.Join(out, "cache"))
	if err != nil {
		return err
	}
	rep.Template = src
	progress("template: %s", src)
	series, err := peertest.WriteSeries(peertest.SeriesSpec{Template: tmpl, Dir: filepath.Join(out, fmt.Sprintf("series-%d", o.n)), N: o.n, Seed: o.seed})
	if err != nil {
		return err
	}
	rep.InstanceBytes = series[0].Size
	seriesDir := filepath.Dir(series[0].Path)
	warm(series)
	progress("%d instances of %d bytes in %s", len(series), series[0].Size, seriesDir)

	var results []result
	add := func(r result, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		progress("  %-34s %7.2f s  %7.1f MB/s  %7.1f inst/s%s", r.Name, r.Seconds, r.MBPerSec, r.InstPerSec, rssNote(r.PeakRSS))
		results = append(results, r)
		return nil
	}
	type step struct {
		key  string // for -skip, besides the peer
		peer string
		name string
		fn   func(context.Context, []peertest.Instance, string) (result, error)
	}
	steps := []step{
		{"storescp", "storescp", "storescp, 1 association", b.runStorescp(false, 1)},
		{"orthanc", "orthanc", "Orthanc, 1 association", b.runOrthanc},
		{"radgate", "radgate", "radgate, 1 association", b.runRadgate(1)},
		{"parallel", "storescp", fmt.Sprintf("storescp --fork, %d associations", o.parallel), b.runStorescp(true, o.parallel)},
		{"parallel", "radgate", fmt.Sprintf("radgate, %d associations", o.parallel), b.runRadgate(o.parallel)},
	}
	for i, s := range steps {
		if skip[s.key] || skip[s.peer] {
			progress("[%d/%d] %s: skipped", i+1, len(steps)+1, s.name)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var reps []result
		for rep := range max(o.repeat, 1) {
			progress("[%d/%d] %s: sending %d instances (%d/%d)…", i+1, len(steps)+1, s.name, len(series), rep+1, max(o.repeat, 1))
			r, err := s.fn(ctx, series, seriesDir)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			reps = append(reps, r)
		}
		r := median(reps)
		r.Name = s.name
		if err := add(r, nil); err != nil {
			return err
		}
	}

	if bigN := bigCount(o.bigN, series[0].Size); bigN > 0 && !skip["big"] && !skip["radgate"] {
		progress("[%d/%d] radgate, large study: %d instances (%.2f GB)…", len(steps)+1, len(steps)+1, bigN, float64(int64(bigN)*series[0].Size)/1e9)
		r, note, err := b.runBig(ctx, tmpl, bigN)
		if note != "" {
			rep.Notes = append(rep.Notes, note)
			progress("  %s", note)
		}
		if err != nil {
			return err
		}
		if r.Files > 0 {
			if err := add(r, nil); err != nil {
				return err
			}
		}
	}
	rep.Results = results
	if !skip["dicomweb"] && !skip["radgate"] {
		study, err := studyOf(series[0].Path)
		if err != nil {
			return err
		}
		if err := b.runDicomweb(ctx, rep, series, study); err != nil {
			return fmt.Errorf("dicomweb: %w", err)
		}
	}
	return nil
}

// median returns the repetition with the median time, with every time and
// the highest peak RSS of all.
func median(reps []result) result {
	sorted := slices.Clone(reps)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.Seconds, b.Seconds) })
	m := sorted[len(sorted)/2]
	m.AllSeconds = nil
	for _, r := range reps {
		m.AllSeconds = append(m.AllSeconds, r.Seconds)
		m.PeakRSS = max(m.PeakRSS, r.PeakRSS)
	}
	return m
}

// bigCount is the large-study size: n, or 2 GiB worth when n is 0.
func bigCount(n int, size int64) int {
	if n != 0 {
		return n
	}
	return int(math.Ceil(float64(twoGiB) / float64(size)))
}

// warm reads every file once so the first run does not pay for a cold page
// cache.
func warm(series []peertest.Instance) {
	for _, in := range series {
		if f, err := os.Open(in.Path); err == nil {
			_, _ = io.Copy(io.Discard, f)
			_ = f.Close()
		}
	}
}

// settle flushes dirty pages so one run's write-back does not slow the next.
func settle() { syscall.Sync() }

// send runs storescu over k associations (k storescu processes, files dealt
// round-robin; one process with +sd +r … DIR when k is 1) and returns the wall
// time until the last exits.
func (b *bench) send(ctx context.Context, name, ae string, port, k int, series []peertest.Instance, dir string) (time.Duration, error) {
	base := []string{"-aet", "BENCHSCU", "-aec", ae}
	var argv [][]string
	if k == 1 {
		argv = append(argv, append(append([]string{}, base...), "+sd", "+r", "127.0.0.1", strconv.Itoa(port), dir))
	} else {
		for i := range k {
			a := append(append([]string{}, base...), "127.0.0.1", strconv.Itoa(port))
			for j := i; j < len(series); j += k {
				a = append(a, series[j].Path)
			}
			argv = append(argv, a)
		}
	}
	errs := make([]error, len(argv))
	var wg sync.WaitGroup
	start := time.Now()
	for i, a := range argv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logPath := filepath.Join(b.logs, fmt.Sprintf("%s-storescu-%d.log", slug(name), i+1))
			lf, err := os.Create(logPath)
			if err != nil {
				errs[i] = err
				return
			}
			defer lf.Close()
			cmd := exec.CommandContext(ctx, b.storescu, a...)
			cmd.Env = peertest.PeerEnv("")
			cmd.Stdout, cmd.Stderr = lf, lf
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("storescu (association %d): %v; see %s", i+1, err, logPath)
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

func measure(series []peertest.Instance, k int, d time.Duration) result {
	var bytes int64
	for _, in := range series {
		bytes += in.Size
	}
	s := d.Seconds()
	return result{Associations: k, Files: len(series), Bytes: bytes, Seconds: round(s, 3),
		MBPerSec: round(float64(bytes)/1e6/s, 1), InstPerSec: round(float64(len(series))/s, 1)}
}

func (b *bench) runStorescp(fork bool, k int) func(context.Context, []peertest.Instance, string) (result, error) {
	return func(ctx context.Context, series []peertest.Instance, dir string) (result, error) {
		name := fmt.Sprintf("storescp-%d", k)
		data := filepath.Join(b.runs, name)
		_ = os.RemoveAll(data)
		defer func() { _ = os.RemoveAll(data); settle() }()
		scp, err := peertest.LaunchStorescp(peertest.StorescpConfig{Dir: data, AE: "STORESCP", Fork: fork, Bindlo: b.bindlo,
			LogPath: filepath.Join(b.logs, name+".log")})
		if err != nil {
			return result{}, err
		}
		b.track(scp.Proc)
		defer b.stop(scp.Proc)
		settle()
		d, err := b.send(ctx, name, scp.AE, scp.Port, k, series, dir)
		r := measure(series, k, d)
		r.Peer = "storescp"
		if err != nil {
			return r, err
		}
		files, _ := filepath.Glob(filepath.Join(data, "*.dcm"))
		r.Arrived = len(files)
		return r, arrived(r)
	}
}

func (b *bench) runOrthanc(ctx context.Context, series []peertest.Instance, dir string) (result, error) {
	data := filepath.Join(b.runs, "orthanc")
	_ = os.RemoveAll(data)
	defer func() { _ = os.RemoveAll(data); settle() }()
	o, err := peertest.LaunchOrthanc(peertest.OrthancConfig{Dir: data, Bindlo: b.bindlo, LogPath: filepath.Join(b.logs, "orthanc.log"),
		NoDicomWeb: len(peertest.Missing("orthanc-dicomweb")) > 0})
	if err != nil {
		return result{}, err
	}
	b.track(o.Proc)
	defer b.stop(o.Proc)
	settle()
	d, err := b.send(ctx, "orthanc", o.AET, o.DicomPort, 1, series, dir)
	r := measure(series, 1, d)
	r.Peer = "orthanc"
	if err != nil {
		return r, err
	}
	var st struct{ CountInstances int }
	if err := o.GetJSON(ctx, "/statistics", &st); err != nil {
		return r, err
	}
	r.Arrived = st.CountInstances
	return r, arrived(r)
}

func (b *bench) runRadgate(k int) func(context.Context, []peertest.Instance, string) (result, error) {
	return func(ctx context.Context, series []peertest.Instance, dir string) (result, error) {
		return b.radgateRun(ctx, fmt.Sprintf("radgate-%d", k), k, series, dir)
	}
}

func (b *bench) radgateRun(ctx context.Context, name string, k int, series []peertest.Instance, dir string) (result, error) {
	data := filepath.Join(b.runs, name)
	_ = os.RemoveAll(data)
	defer func() { _ = os.RemoveAll(data); settle() }()
	rg, err := peertest.LaunchRadgate(peertest.RadgateConfig{Bin: b.radgate, DataDir: data, LogPath: filepath.Join(b.logs, name+".log"),
		Env: map[string]string{"RADGATE_DIMSE_MAX_ASSOCIATIONS": strconv.Itoa(max(k, 4) * 2)}})
	if err != nil {
		return result{}, err
	}
	b.track(rg.Proc)
	defer b.stop(rg.Proc)
	settle()
	d, err := b.send(ctx, name, rg.Config.AE, rg.Config.DIMSEPort, k, series, dir)
	r := measure(series, k, d)
	r.Peer = "radgate"
	if hwm, herr := rg.PeakRSS(); herr == nil {
		r.PeakRSS = hwm
	}
	if err != nil {
		return r, fmt.Errorf("%w; radgate log: %s", err, rg.LogPath)
	}
	// What arrived is what radgate acknowledged: the committed records of
	// its log (its index follows them by milliseconds).
	keys, err := store.LogRecords(data)
	if err != nil {
		return r, err
	}
	r.Arrived = len(keys)
	return r, arrived(r)
}

// runBig sends a ~2 GB study to radgate on one association, for its peak
// memory. It skips (with a note) when the disk cannot hold the study twice.
func (b *bench) runBig(ctx context.Context, tmpl string, n int) (result, string, error) {
	st, err := os.Stat(tmpl)
	if err != nil {
		return result{}, "", err
	}
	need := 2*int64(n)*st.Size() + 1<<30 // the series, radgate's copy, slack
	var fs syscall.Statfs_t
	if err := syscall.Statfs(b.o.out, &fs); err == nil {
		if have := int64(fs.Bavail) * fs.Bsize; have < need {
			return result{}, fmt.Sprintf("large-study run skipped: disk short (%s free in %s, %s needed)", gb(have), b.o.out, gb(need)), nil
		}
	}
	progress("  generating the large study (cached in %s)…", b.o.out)
	series, err := peertest.WriteSeries(peertest.SeriesSpec{Template: tmpl, Dir: filepath.Join(b.o.out, fmt.Sprintf("series-big-%d", n)), N: n, Seed: b.o.seed + "-big"})
	if err != nil {
		return result{}, "", err
	}
	settle()
	r, err := b.radgateRun(ctx, "radgate-big", 1, series, filepath.Dir(series[0].Path))
	r.Name = fmt.Sprintf("radgate, %.1f GB study, 1 association", float64(r.Bytes)/1e9)
	return r, "", err
}

func arrived(r result) error {
	if r.Arrived != r.Files {
		return fmt.Errorf("%d of %d instances arrived", r.Arrived, r.Files)
	}
	return nil
}

func ratios(rep *report) {
	find := func(peer string, k int, big bool) *result {
		for i := range rep.Results {
			r := &rep.Results[i]
			if r.Peer == peer && r.Associations == k && strings.Contains(r.Name, "GB study") == big {
				return r
			}
		}
		return nil
	}
	k := 0
	for _, r := range rep.Results {
		if r.Associations > 1 {
			k = r.Associations
		}
	}
	rg1, scp1, orth := find("radgate", 1, false), find("storescp", 1, false), find("orthanc", 1, false)
	if rg1 != nil && scp1 != nil {
		v := round(rg1.Seconds/scp1.Seconds, 2)
		rep.Ratios["radgate_time_over_storescp_time"] = v
		rep.Verdicts["radgate_time_over_storescp_time"] = verdict(v <= targetTimeRatio, fmt.Sprintf("target ≤ %.2f", targetTimeRatio))
	}
	if rg1 != nil && orth != nil {
		v := round(rg1.InstPerSec/orth.InstPerSec, 2)
		rep.Ratios["radgate_rate_over_orthanc_rate"] = v
		rep.Verdicts["radgate_rate_over_orthanc_rate"] = verdict(v >= targetOrthancRatio, fmt.Sprintf("target ≥ %.1f", targetOrthancRatio))
	}
	if rgk := find("radgate", k, false); rgk != nil && rg1 != nil && k > 1 {
		v := round(rgk.InstPerSec/rg1.InstPerSec, 2)
		rep.Ratios[fmt.Sprintf("radgate_%d_assoc_speedup", k)] = v
		rep.Verdicts[fmt.Sprintf("radgate_%d_assoc_speedup", k)] = verdict(v > 1, "target > 1")
	}
	if sk := find("storescp", k, false); sk != nil && scp1 != nil && k > 1 {
		rep.Ratios[fmt.Sprintf("storescp_%d_assoc_speedup", k)] = round(sk.InstPerSec/scp1.InstPerSec, 2)
	}
	if big := find("radgate", 1, true); big != nil {
		rep.Ratios["radgate_big_study_peak_rss_mib"] = round(float64(big.PeakRSS)/(1<<20), 1)
	}
	inferenceRatios(rep)
	webRatios(rep)
}

func verdict(ok bool, target string) string {
	if ok {
		return "met (" + target + ")"
	}
	return "NOT met (" + target + ")"
}

func printReport(w io.Writer, rep *report) {
	defer printInference(w, rep)
	defer printDicomweb(w, rep)
	fmt.Fprintf(w, "\nradgate ingest benchmark — %s, %s CPUs, %s\n", rep.Started.Format(time.RFC3339), rep.Host["cpus"], rep.Host["go"])
	fmt.Fprintf(w, "instances: %d bytes each (CT 512×512 16-bit, explicit VR LE), from %s\n", rep.InstanceBytes, rep.Template)
	fmt.Fprintf(w, "DCMTK and Orthanc with TCP_NODELAY=1; wall time of storescu (median of the repetitions); radgate fsyncs each instance, storescp does not\n\n")
	fmt.Fprintf(w, "%-40s %9s %8s %8s %8s %11s %10s\n", "run", "instances", "MB", "seconds", "MB/s", "instances/s", "peak RSS")
	for _, r := range rep.Results {
		rss := "-"
		if r.PeakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.PeakRSS)/(1<<20))
		}
		fmt.Fprintf(w, "%-40s %9d %8.1f %8.2f %8.1f %11.1f %10s\n", r.Name, r.Files, float64(r.Bytes)/1e6, r.Seconds, r.MBPerSec, r.InstPerSec, rss)
	}
	fmt.Fprintln(w)
	labels := []struct{ key, label string }{
		{"radgate_time_over_storescp_time", "radgate time / storescp time (1 association)"},
		{"radgate_rate_over_orthanc_rate", "radgate rate / Orthanc rate (1 association)"},
	}
	for k := range rep.Ratios {
		if strings.HasSuffix(k, "_assoc_speedup") {
			peer, n, _ := strings.Cut(strings.TrimSuffix(k, "_assoc_speedup"), "_")
			labels = append(labels, struct{ key, label string }{k, fmt.Sprintf("%s throughput, %s associations / 1", peer, n)})
		}
	}
	labels = append(labels, struct{ key, label string }{"radgate_big_study_peak_rss_mib", "radgate peak RSS receiving the large study, MiB"})
	for _, m := range benchModels {
		k := m.name + "_radgate_over_onnxruntime_node"
		labels = append(labels, struct{ key, label string }{k, m.name + ": radgate items/s / onnxruntime-node items/s"})
	}
	labels = append(labels,
		struct{ key, label string }{"ct_dynamic_batching_speedup", "resnet18-ct: 8 concurrent (batched) / 1 at a time"},
		struct{ key, label string }{"rss_growth_500_to_10000_requests_mib", "RSS growth from 500 to 10,000 requests, MiB"})
	for _, l := range labels {
		v, ok := rep.Ratios[l.key]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  %-62s %8.2f  %s\n", l.label, v, rep.Verdicts[l.key])
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func writeJSON(out string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(out, "bench-"+rep.Started.Format("20060102T150405Z")+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "bench-latest.json"), b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\nresults: %s\n", p)
	return nil
}

func hostInfo() map[string]string {
	h := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(), "goos": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	if p, err := peertest.Tool("storescu"); err == nil {
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			h["dcmtk"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	if p, err := peertest.Tool("Orthanc"); err == nil {
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			h["orthanc"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	return h
}

func rssNote(b int64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("  peak RSS %.1f MiB", float64(b)/(1<<20))
}

func gb(b int64) string { return fmt.Sprintf("%.1f GB", float64(b)/1e9) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
}
