package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/dimse"
)

// clientFlags are the options echo and send share.
type clientFlags struct {
	calling string
	timeout time.Duration
	maxPDU  uint
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.calling, "calling", "RADGATE", "our (calling) AE title")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "connect, association and per-message response timeout")
	fs.UintVar(&c.maxPDU, "max-pdu", dimse.DefaultMaxPDULength, "largest PDU we accept from the peer")
}

func (c *clientFlags) config(calledAE string) dimse.ClientConfig {
	return dimse.ClientConfig{
		CallingAE:    c.calling,
		CalledAE:     calledAE,
		MaxPDULength: uint32(c.maxPDU),
		ARTIM:        c.timeout,
		IdleTimeout:  c.timeout,
	}
}

// newClientFlags is the flag set of a client subcommand with the shared
// options registered.
func newClientFlags(name, synopsis string, stderr io.Writer) (*flag.FlagSet, *clientFlags) {
	fs := newFlags(name, fmt.Sprintf("usage: radgate %s %s\n", name, synopsis), stderr)
	cf := &clientFlags{}
	cf.register(fs)
	return fs, cf
}

// parseClientArgs parses a client subcommand's arguments: flags anywhere,
// then the peer AE@HOST:PORT first among minPos to maxPos positionals
// (maxPos 0: no limit). A non-zero code is the exit status for bad usage.
func parseClientArgs(fs *flag.FlagSet, args []string, minPos, maxPos int, stderr io.Writer) (pos []string, ae, addr string, code int) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, "", "", 2
	}
	if len(pos) < minPos || (maxPos > 0 && len(pos) > maxPos) {
		fs.Usage()
		return nil, "", "", 2
	}
	if ae, addr, err = parsePeer(pos[0]); err != nil {
		fmt.Fprintf(stderr, "radgate %s: %v\n", fs.Name(), err)
		return nil, "", "", 2
	}
	return pos, ae, addr, 0
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments, and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parsePeer splits AE@HOST:PORT.
func parsePeer(s string) (ae, addr string, err error) {
	ae, addr, ok := strings.Cut(s, "@")
	if !ok || ae == "" || len(ae) > 16 || addr == "" {
		return "", "", fmt.Errorf("%q is not AE@HOST:PORT (AE title of 1 to 16 characters)", s)
	}
	if _, port, err := splitPort(addr); err != nil || port == 0 {
		return "", "", fmt.Errorf("%q: want HOST:PORT", addr)
	}
	return ae, addr, nil
}

func splitPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p < 1 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return addr[:i], p, nil
}

func echo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cf := newClientFlags("echo", "AE@HOST:PORT [--calling AE] [--timeout D]", stderr)
	pos, ae, addr, code := parseClientArgs(fs, args, 1, 1, stderr)
	if code != 0 {
		return code
	}
	start := time.Now()
	c, err := dimse.Dial(ctx, addr, cf.config(ae), []dimse.Proposal{{
		AbstractSyntax:   dcm.VerificationSOPClass,
		TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian, dcm.ImplicitVRLittleEndian},
	}})
	if err != nil {
		fmt.Fprintf(stderr, "radgate echo: %s: %v\n", pos[0], err)
		return 1
	}
	st, err := c.Echo(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "radgate echo: %s: %v\n", pos[0], err)
		return 1
	}
	if err := c.Release(ctx); err != nil {
		fmt.Fprintf(stderr, "radgate echo: release: %v\n", err)
	}
	if !st.OK() {
		fmt.Fprintf(stderr, "radgate echo: %s answered %s\n", pos[0], st)
		return 1
	}
	fmt.Fprintf(stdout, "C-ECHO %s: %s in %s\n", pos[0], st, time.Since(start).Round(time.Microsecond))
	return 0
}

func send(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cf := newClientFlags("send", "AE@HOST:PORT PATH... [--calling AE] [--priority low|medium|high]", stderr)
	prio := fs.String("priority", "medium", "C-STORE priority: low, medium or high")
	quiet := fs.Bool("quiet", false, "no progress output")
	pos, ae, addr, code := parseClientArgs(fs, args, 2, 0, stderr)
	if code != 0 {
		return code
	}
	var p dimse.Priority
	switch *prio {
	case "low":
		p = dimse.PriorityLow
	case "medium":
		p = dimse.PriorityMedium
	case "high":
		p = dimse.PriorityHigh
	default:
		fmt.Fprintf(stderr, "radgate send: --priority %q: want low, medium or high\n", *prio)
		return 2
	}
	bar := newProgress(stderr, *quiet)
	sum, err := dimse.SendFiles(ctx, addr, pos[1:], dimse.SendOptions{
		Client:   cf.config(ae),
		Priority: p,
		Progress: bar.update,
	})
	bar.finish()
	rate := 0.0
	if s := sum.Elapsed.Seconds(); s > 0 {
		rate = float64(sum.Bytes) / 1e6 / s
	}
	fmt.Fprintf(stdout, "sent %d files (%.1f MB) to %s in %s: %d stored, %d with warnings, %d failed (%.1f MB/s)\n",
		sum.Files, float64(sum.Bytes)/1e6, pos[0], sum.Elapsed.Round(time.Millisecond), sum.Stored, sum.Warnings, sum.Failed, rate)
	if err != nil {
		fmt.Fprintf(stderr, "radgate send: %v\n", err)
		return 1
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}

// progress shows a one-line bar on a terminal, and periodic lines otherwise;
// failures and warnings are always printed with the file's path.
type progress struct {
	w        io.Writer
	quiet    bool
	tty      bool
	last     time.Time
	start    time.Time
	lastLine int
}

func newProgress(w io.Writer, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, quiet: quiet, tty: tty, start: time.Now()}
}

func (p *progress) update(sp dimse.SendProgress) {
	if sp.Err != nil || (sp.Status.Class() != "success") {
		p.clear()
		why := sp.Status.String()
		if sp.Err != nil {
			why = sp.Err.Error()
		}
		fmt.Fprintf(p.w, "%s: %s\n", sp.Path, why)
	}
	if p.quiet {
		return
	}
	now := time.Now()
	if sp.Done != sp.Total && now.Sub(p.last) < p.interval() {
		return
	}
	p.last = now
	pct := 100.0
	if sp.TotalBytes > 0 {
		pct = 100 * float64(sp.Bytes) / float64(sp.TotalBytes)
	}
	rate := float64(sp.Bytes) / 1e6 / max(now.Sub(p.start).Seconds(), 1e-9)
	line := fmt.Sprintf("%d/%d files  %5.1f%%  %.1f/%.1f MB  %.1f MB/s", sp.Done, sp.Total, pct, float64(sp.Bytes)/1e6, float64(sp.TotalBytes)/1e6, rate)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", line)
		p.lastLine = len(line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) interval() time.Duration {
	if p.tty {
		return 100 * time.Millisecond
	}
	return 2 * time.Second
}

func (p *progress) clear() {
	if p.tty && p.lastLine > 0 {
		fmt.Fprintf(p.w, "\r%*s\r", p.lastLine, "")
		p.lastLine = 0
	}
}

func (p *progress) finish() {
	if p.tty && p.lastLine > 0 {
		fmt.Fprintln(p.w)
	}
}
