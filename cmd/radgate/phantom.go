package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/radgate/radgate/phantom"
)

const phantomSynopsis = "--kind cxr|ct-head --finding none|pneumothorax|effusion|hemorrhage --out DIR [--seed N] [--slices N]"

// phantomCmd writes a synthetic phantom study (not for clinical use) into
// a folder, one Part 10 file per instance, and says which are positive.
func phantomCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("phantom", fmt.Sprintf("usage: radgate phantom %s\n", phantomSynopsis), stderr)
	kind := fs.String("kind", "", "cxr (PA chest radiograph) or ct-head (axial head CT series)")
	finding := fs.String("finding", string(phantom.None), "none; pneumothorax or effusion (cxr); hemorrhage (ct-head)")
	out := fs.String("out", "", "folder to write the files into (created if missing)")
	seed := fs.Uint64("seed", 1, "seed: the same flags always write the same bytes")
	slices := fs.Int("slices", 0, fmt.Sprintf("ct-head slices, 1 to %d (0: %d)", phantom.MaxSlices, phantom.DefaultSlices))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *kind == "" || *out == "" {
		fs.Usage()
		return 2
	}
	spec := phantom.Spec{Kind: phantom.Kind(*kind), Finding: phantom.Finding(*finding), Seed: *seed, Slices: *slices}
	if err := spec.Validate(); err != nil {
		fmt.Fprintf(stderr, "radgate phantom: %v\n", err)
		return 2
	}
	insts, err := phantom.Generate(spec)
	if err != nil {
		fmt.Fprintf(stderr, "radgate phantom: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "radgate phantom: %v\n", err)
		return 1
	}
	var positive []string
	for i, inst := range insts {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "radgate phantom: %v\n", err)
			return 1
		}
		p := filepath.Join(*out, fmt.Sprintf("%04d_%s.dcm", i+1, inst.SOPInstanceUID))
		if err := os.WriteFile(p, inst.Data, 0o644); err != nil {
			fmt.Fprintf(stderr, "radgate phantom: %v\n", err)
			return 1
		}
		state := "negative"
		if inst.Positive {
			state = "positive"
			positive = append(positive, strconv.Itoa(i+1))
		}
		fmt.Fprintf(stdout, "%s %s\n", p, state)
	}
	pos := "none"
	if len(positive) > 0 {
		pos = strings.Join(positive, ",")
	}
	fmt.Fprintf(stdout, "phantom %s/%s seed %d: study %s, %d files in %s, positive instances: %s (%s)\n",
		spec.Kind, spec.Finding, spec.Seed, spec.StudyInstanceUID(), len(insts), *out, pos, phantom.Notice)
	return 0
}
