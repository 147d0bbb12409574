package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/gateway"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/models"
)

// settingsFlags is a subcommand's flag set that also takes every setting
// (--models-dir, --ort-lib, --device, …) and --config, as serve does.
func settingsFlags(name, synopsis string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := newFlags(name, fmt.Sprintf("usage: radgate %s %s\n\nOptions (and every serve setting):\n", name, synopsis), stderr)
	cfgPath := fs.String("config", "", "YAML config file")
	config.RegisterFlags(fs)
	return fs, cfgPath
}

const modelsSynopsis = "list | verify [--models-dir DIR]"

// modelsCmd: `radgate models list` reads the repository's manifests;
// `radgate models verify` also checks every file's checksum and loads
// every model into ONNX Runtime, comparing its graph with its manifest.
func modelsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := settingsFlags("models", modelsSynopsis, stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || (pos[0] != "list" && pos[0] != "verify") {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ(), fs)
	if err != nil {
		fmt.Fprintf(stderr, "radgate models: %v\n", err)
		return 2
	}
	if pos[0] == "list" {
		return listModels(cfg.ModelsDir, stdout, stderr)
	}
	return verifyModels(cfg, stdout, stderr)
}

func listModels(dir string, stdout, stderr io.Writer) int {
	found, errs := models.Scan(dir)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tTASK\tINPUT\tLABELS\tSHA256")
	for _, m := range found {
		labels := make([]string, len(m.Labels))
		for i, l := range m.Labels {
			labels[i] = l.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%v\t%s\t%s\n", m.Name, m.Version, m.Task, m.Input.Name, m.Input.Shape,
			strings.Join(labels, ","), m.SHA256[:12])
	}
	tw.Flush()
	for _, err := range errs {
		fmt.Fprintf(stderr, "radgate models: %v\n", err)
	}
	if len(errs) > 0 || len(found) == 0 {
		if len(found) == 0 && len(errs) == 0 {
			fmt.Fprintf(stderr, "radgate models: no models in %s\n", dir)
		}
		return 1
	}
	return 0
}

func verifyModels(cfg *config.Config, stdout, stderr io.Writer) int {
	log := newLogger(stderr, "error", cfg.LogFormat)
	e, errs, err := inference.Open(gateway.InferenceConfig(cfg), log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "radgate models: %v\n", err)
		return 1
	}
	defer e.Close()
	for _, l := range e.Models() {
		fmt.Fprintf(stdout, "ok      %s (sha256 %s, graph matches manifest, loaded on %s, ONNX Runtime %s)\n",
			l.ID(), l.SHA256[:12], l.Placement, e.RuntimeVersion())
	}
	for _, err := range errs {
		fmt.Fprintf(stdout, "FAILED  %v\n", err)
	}
	if len(errs) > 0 || len(e.Models()) == 0 {
		return 1
	}
	return 0
}

const inferSynopsis = "--model NAME[@VERSION] [--priority routine|stat|...] [--timeout D] PATH..."

// infer runs a model on DICOM files and folders and prints one JSON
// result per radiograph, or per series for series models.
func infer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := settingsFlags("infer", inferSynopsis, stderr)
	model := fs.String("model", "", "model name (its highest version) or NAME@VERSION")
	prio := fs.String("priority", "routine", "queue priority: low, routine, high or stat")
	timeout := fs.Duration("timeout", 0, "deadline of each radiograph or series (0: none); a request still queued then is dropped")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	pri, perr := inference.ParsePriority(*prio)
	if *model == "" || len(paths) == 0 || perr != nil {
		if perr != nil {
			fmt.Fprintf(stderr, "radgate infer: %v\n", perr)
		}
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ(), fs)
	if err != nil {
		fmt.Fprintf(stderr, "radgate infer: %v\n", err)
		return 2
	}
	files, err := expandPaths(paths)
	if err != nil {
		fmt.Fprintf(stderr, "radgate infer: %v\n", err)
		return 1
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	e, _, err := inference.Open(gateway.InferenceConfig(cfg), log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "radgate infer: %v\n", err)
		return 1
	}
	defer e.Close()
	l, ok := e.Lookup(*model)
	if !ok {
		fmt.Fprintf(stderr, "radgate infer: model %q is not loaded (see radgate models verify)\n", *model)
		return 1
	}
	code := 0
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	for _, group := range groupSources(l.Manifest, files, log) {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if *timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, *timeout)
		}
		res, err := e.Run(rctx, l.ID(), pri, group)
		cancel()
		if err != nil {
			code = 1
			fmt.Fprintf(stderr, "radgate infer: %s: %v\n", group[0].Name, err)
			if res == nil {
				continue
			}
		}
		if len(res.Errors) > 0 {
			code = 1
		}
		enc.Encode(res)
	}
	return code
}

// expandPaths lists the regular files of paths, folders recursively, in
// lexical order.
func expandPaths(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no files found")
	}
	return files, nil
}

// groupSources makes the units a model answers for: each file alone for a
// radiograph model; one group per series (by SeriesInstanceUID, read from
// the header) for a model that aggregates slices.
func groupSources(m models.Manifest, files []string, log *slog.Logger) [][]inference.Source {
	src := func(p string) inference.Source {
		return inference.Source{Name: p, Open: func() (io.ReadCloser, error) { return os.Open(p) }}
	}
	if m.Aggregate != "max" {
		groups := make([][]inference.Source, len(files))
		for i, f := range files {
			groups[i] = []inference.Source{src(f)}
		}
		return groups
	}
	bySeries := map[string][]inference.Source{}
	var order []string
	for _, f := range files {
		key := seriesOf(f)
		if key == "" {
			// Unreadable: its own group, so Run reports why.
			key = "file:" + f
			log.Debug("no series UID; running alone", "file", f)
		}
		if !slices.Contains(order, key) {
			order = append(order, key)
		}
		bySeries[key] = append(bySeries[key], src(f))
	}
	groups := make([][]inference.Source, len(order))
	for i, k := range order {
		groups[i] = bySeries[k]
	}
	return groups
}

// seriesOf reads a file's SeriesInstanceUID, or "" when it cannot.
func seriesOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	meta, data, err := dcm.OpenPart10(f)
	if err != nil {
		return ""
	}
	ts, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return ""
	}
	attrs, err := dcm.ScanDataset(data, ts, []dcm.Tag{dcm.SeriesInstanceUID})
	if err != nil {
		return ""
	}
	return attrs[dcm.SeriesInstanceUID]
}
