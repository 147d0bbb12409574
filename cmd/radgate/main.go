// Command radgate is the DICOM imaging AI inference gateway: `radgate serve`
// runs it; echo and send are DIMSE client tools; version prints the build.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time (-ldflags "-X main.version=..."); otherwise
// the module version or VCS revision from the build info is used.
var version = ""

const usage = `radgate — DICOM imaging AI inference gateway

Usage:
  radgate serve   [--config FILE] [--SETTING VALUE ...]
  radgate echo    AE@HOST:PORT [--calling AE]
  radgate send    AE@HOST:PORT PATH... [--calling AE] [--priority low|medium|high]
  radgate phantom --kind cxr|ct-head --finding none|pneumothorax|effusion|hemorrhage --out DIR [--seed N] [--slices N]
  radgate infer   --model NAME[@VERSION] [--priority routine|stat] PATH...
  radgate models  list | verify
  radgate tensors --manifest FILE --out DIR (--phantoms KIND --seeds FROM-TO | PATH...)
  radgate bench   --grpc HOST:PORT --model NAME [--concurrency N[,N...] | --rate R[,R...]] [--requests N | --duration D] [--batch N] [--out DIR]
  radgate deidentify --out DIR [--retain-uids] [options] PATH...
  radgate audit   verify [--data-dir DIR]
  radgate keys    init|rotate --file PATH
  radgate version

Run 'radgate COMMAND -h' for a command's options. Settings come from
defaults < config file < environment (RADGATE_*) < flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "echo":
		return echo(ctx, args[1:], stdout, stderr)
	case "send":
		return send(ctx, args[1:], stdout, stderr)
	case "phantom":
		return phantomCmd(ctx, args[1:], stdout, stderr)
	case "infer":
		return infer(ctx, args[1:], stdout, stderr)
	case "tensors":
		return tensors(ctx, args[1:], stdout, stderr)
	case "models":
		return modelsCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "deidentify":
		return deidentifyCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "keys":
		return keysCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "radgate %s\n", buildVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "radgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v = s.Value[:12]
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// newFlags is a subcommand's flag set: errors on stderr, and -h prints
// header, then the options.
func newFlags(name, header string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, header)
		fs.PrintDefaults()
	}
	return fs
}
