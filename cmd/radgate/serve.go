package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/gateway"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML config file")
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "radgate serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ(), fs)
	if err != nil {
		fmt.Fprintf(stderr, "radgate serve: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	for _, name := range config.UnknownEnv(os.Environ()) {
		log.Warn("radgate: ignoring unknown setting in the environment", "env", name)
	}
	g, err := gateway.New(ctx, cfg, log, buildVersion())
	if err != nil {
		log.Error("radgate: cannot start", "err", err)
		return 1
	}
	fmt.Fprint(stdout, g.Banner(ctx))
	stopReload := reloadOnHangup(ctx, g)
	defer stopReload()
	if err := g.Run(ctx); err != nil {
		log.Error("radgate: stopped with an error", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by config
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// reloadOnHangup rescans the model repository and re-reads the TLS
// certificate and the key file on each SIGHUP until ctx ends or the
// returned stop is called.
func reloadOnHangup(ctx context.Context, g *gateway.Gateway) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				g.ReloadModels(ctx)
				g.ReloadTLS()
				g.ReloadKeys()
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}
