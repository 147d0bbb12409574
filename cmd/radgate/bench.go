package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/radgate/radgate/loadtest"
)

const benchSynopsis = "--grpc HOST:PORT --model NAME [--version V] [--concurrency N[,N...] | --rate R[,R...]] [--requests N | --duration D] [--batch N] [--warmup N] [--priority P] [--timeout D] [--out DIR]"

// benchMaxMsgSize is the largest answer bench accepts (and the largest
// request it sends): loadtest.MaxInputBytes plus room for the envelope.
const benchMaxMsgSize = loadtest.MaxInputBytes + 1<<20

// listFlag is a comma list of positive numbers (--concurrency 1,2,4).
type listFlag[T int | float64] struct {
	vals  []T
	parse func(string) (T, error)
}

func (l *listFlag[T]) String() string {
	s := make([]string, len(l.vals))
	for i, v := range l.vals {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

func (l *listFlag[T]) Set(s string) error {
	l.vals = nil
	for f := range strings.SplitSeq(s, ",") {
		v, err := l.parse(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return fmt.Errorf("%q: want positive numbers separated by commas", s)
		}
		l.vals = append(l.vals, v)
	}
	return nil
}

// bench runs a load test against a KServe v2 gRPC endpoint and prints a
// table; exit 1 if any request failed.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench", fmt.Sprintf("usage: radgate bench %s\n\nOptions:\n", benchSynopsis), stderr)
	addr := fs.String("grpc", "", "KServe v2 gRPC endpoint HOST:PORT (radgate, Triton)")
	tlsCA := fs.String("tls-ca", "", "connect over TLS, trusting the CA certificates (PEM) in this file (empty: plaintext)")
	token := fs.String("token", "", "bearer token (an OAuth 2 access token with models.infer) sent with every call")
	model := fs.String("model", "", "model name")
	ver := fs.String("version", "", "model version (empty: the server's choice)")
	conc := &listFlag[int]{vals: []int{1}, parse: strconv.Atoi}
	fs.Var(conc, "concurrency", "closed loop: concurrent requests, or a comma list, one step each")
	rate := &listFlag[float64]{parse: func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }}
	fs.Var(rate, "rate", "open loop instead: requests per second, or a comma list, one step each")
	requests := fs.Int("requests", loadtest.DefaultRequests, "requests per step")
	duration := fs.Duration("duration", 0, "length of each step, instead of --requests")
	batch := fs.Int("batch", 1, "items per request (the input's leading -1 dimension)")
	warmup := fs.Int("warmup", 5, "requests sent before the first step, not counted")
	prio := fs.String("priority", "", "request parameter \"priority\": ROUTINE, HIGH, STAT or LOW (empty: not sent)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline of each request (0: none)")
	out := fs.String("out", "", "folder to write results.csv, results.json and plot.html into")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case *addr == "" || *model == "":
		bad = "--grpc and --model are required"
	case set["concurrency"] && set["rate"]:
		bad = "--concurrency and --rate are exclusive"
	case set["requests"] && set["duration"]:
		bad = "--requests and --duration are exclusive"
	case *requests <= 0 || *duration < 0 || *batch <= 0 || *warmup < 0 || *timeout < 0:
		bad = "--requests and --batch must be positive; --duration, --warmup and --timeout not negative"
	case *prio != "" && !validPriority(*prio):
		bad = fmt.Sprintf("--priority %q: want ROUTINE, HIGH, STAT or LOW", *prio)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "radgate bench: %s\n", bad)
		fs.Usage()
		return 2
	}
	cfg := loadtest.Config{Concurrency: conc.vals, Requests: *requests, Duration: *duration, Batch: *batch, Warmup: *warmup, Timeout: *timeout}
	if set["rate"] {
		cfg.Concurrency, cfg.Rate = nil, rate.vals
	}
	if *duration > 0 {
		cfg.Requests = 0
	}

	creds := insecure.NewCredentials()
	if *tlsCA != "" {
		c, err := credentials.NewClientTLSFromFile(*tlsCA, "")
		if err != nil {
			fmt.Fprintf(stderr, "radgate bench: --tls-ca: %v\n", err)
			return 2
		}
		creds = c
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(benchMaxMsgSize), grpc.MaxCallSendMsgSize(benchMaxMsgSize))}
	if *token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer(*token)))
	}
	conn, err := grpc.NewClient(*addr, dopts...)
	if err != nil {
		fmt.Fprintf(stderr, "radgate bench: %v\n", err)
		return 2
	}
	defer conn.Close()
	mdCtx, cancel := context.WithTimeout(ctx, cmp0(*timeout, 30*time.Second))
	client, err := loadtest.NewGRPCClient(mdCtx, conn, loadtest.Request{Model: *model, Version: *ver, Batch: *batch, Priority: strings.ToLower(*prio)})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "radgate bench: %v\n", err)
		return 1
	}
	cfg.Client = client

	pb := newBenchProgress(stderr)
	rep, runErr := loadtest.Run(ctx, cfg, pb.update)
	pb.finish()
	rep.Target, rep.Model, rep.Version = *addr, *model, *ver
	if err := loadtest.WriteTable(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "radgate bench: %v\n", err)
		return 1
	}
	code := 0
	if *out != "" {
		if err := writeBenchFiles(*out, rep); err != nil {
			fmt.Fprintf(stderr, "radgate bench: %v\n", err)
			code = 1
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "radgate bench: %v\n", runErr)
		return 1
	}
	if n := rep.Failed(); n > 0 {
		fmt.Fprintf(stderr, "radgate bench: %d requests failed\n", n)
		return 1
	}
	return code
}

// cmp0 is d, or def when d is zero.
func cmp0(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func validPriority(p string) bool {
	switch strings.ToLower(p) {
	case "routine", "high", "stat", "low":
		return true
	}
	return false
}

// writeBenchFiles writes results.csv, results.json and plot.html in dir.
func writeBenchFiles(dir string, rep loadtest.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, loadtest.Report) error
	}{
		{"results.csv", loadtest.WriteCSV},
		{"results.json", loadtest.WriteJSON},
		{"plot.html", loadtest.WritePlot},
	} {
		fh, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			return err
		}
		err = f.write(fh, rep)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// benchProgress draws a bar on a terminal, else a line about every
// benchLineInterval and at each step's end.
type benchProgress struct {
	w    io.Writer
	tty  bool
	last time.Time
	drew bool
}

const (
	benchLineInterval = time.Second
	benchBarWidth     = 30
)

func newBenchProgress(w io.Writer) *benchProgress {
	tty := false
	if f, ok := w.(*os.File); ok {
		fi, err := f.Stat()
		tty = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return &benchProgress{w: w, tty: tty}
}

func (p *benchProgress) update(pr loadtest.Progress) {
	frac, count := 0.0, fmt.Sprintf("%d requests", pr.Done)
	switch {
	case pr.Total > 0:
		frac, count = float64(pr.Done)/float64(pr.Total), fmt.Sprintf("%d/%d requests", pr.Done, pr.Total)
	case pr.Duration > 0:
		frac = min(pr.Elapsed.Seconds()/pr.Duration.Seconds(), 1)
	}
	errs := plural(pr.Errors, "error")
	if !p.tty {
		if pr.Final || time.Since(p.last) >= benchLineInterval {
			p.last = time.Now()
			fmt.Fprintf(p.w, "step %d/%d %s: %s, %s\n", pr.Step, pr.Steps, pr.Load, count, errs)
		}
		return
	}
	filled := int(frac * benchBarWidth)
	fmt.Fprintf(p.w, "\r\033[Kstep %d/%d %-8s [%s%s] %s, %s", pr.Step, pr.Steps, pr.Load,
		strings.Repeat("#", filled), strings.Repeat(".", benchBarWidth-filled), count, errs)
	p.drew = true
	if pr.Final {
		fmt.Fprintln(p.w)
		p.drew = false
	}
}

func (p *benchProgress) finish() {
	if p.drew {
		fmt.Fprintln(p.w)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// bearer sends "authorization: Bearer <token>" with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so that a token can be tried over a
// plaintext loopback connection too; over a network, use --tls-ca.
func (b bearer) RequireTransportSecurity() bool { return false }
