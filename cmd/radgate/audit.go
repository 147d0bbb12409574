package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/config"
)

const auditUsage = `usage: radgate audit verify [--data-dir DIR] [--config FILE]

Verifies the audit trail in DIR/audit (DIR: --data-dir, else the config
file's data_dir, else $RADGATE_DATA_DIR, else ./var — the gateway's own
data_dir): every record's HMAC-SHA-256 chain hash, seq continuity across
files, and the HEAD and ANCHOR files, so an edited, inserted, deleted or
reordered record, a removed file and a cut tail are all found.

It only reads: it takes no lock, repairs nothing and appends no record, so
it may run beside a running gateway. On a stopped trail a partial last
line (a crash mid-write) is reported; the gateway cuts it off at its next
start. It prints a line per file, then either
  audit trail intact: N records, files F, from T1 to T2   (exit 0)
or the first break: file, line, seq and what is wrong      (exit 1).

Options:
`

// auditCmd: `radgate audit verify`.
func auditCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit", auditUsage, stderr)
	cfgPath := fs.String("config", "", "YAML config file (for its data_dir)")
	// Only registered so config.Load sees it; the default lives in config.
	fs.String("data-dir", "", "the gateway's data folder (default ./var)")
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 || pos[0] != "verify" {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ(), fs)
	if err != nil {
		fmt.Fprintf(stderr, "radgate audit: %v\n", err)
		return 2
	}
	dir := filepath.Join(cfg.DataDir, "audit")
	rep, err := audit.VerifyProgress(dir, func(f audit.FileSummary) {
		fmt.Fprintf(stdout, "%s: %d records (seq %d-%d) ok\n", f.Name, f.Records, f.FirstSeq, f.LastSeq)
	})
	var brk *audit.BreakError
	switch {
	case errors.As(err, &brk):
		fmt.Fprintf(stderr, "audit trail BROKEN after %d good records: %s line %d (seq %d): %s\n",
			rep.Records, brk.File, brk.Line, brk.Seq, brk.Reason)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "radgate audit: cannot verify %s: %v\n", dir, err)
		return 1
	}
	fmt.Fprintf(stdout, "audit trail intact: %d records, files %d, from %s to %s\n",
		rep.Records, len(rep.Files), rep.First.Format(time.RFC3339), rep.Last.Format(time.RFC3339))
	return 0
}
