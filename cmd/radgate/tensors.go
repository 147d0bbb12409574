package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/phantom"
)

const tensorsSynopsis = `--manifest FILE --out DIR (--phantoms cxr|ct-head --seeds FROM-TO [--findings a,b] [--slices N] | PATH...)`

// tensorsMeta describes a tensor folder: x.f32 holds Count items of
// ItemShape float32 (little-endian, row-major), y.f32 Count × len(Labels)
// targets (1 when the item shows the label's finding; only known for
// phantoms), items.jsonl one line per item saying where it came from.
type tensorsMeta struct {
	Manifest  string   `json:"manifest"`
	Count     int      `json:"count"`
	ItemShape []int64  `json:"item_shape"`
	Labels    []string `json:"labels"`
}

type tensorItem struct {
	Seed     uint64 `json:"seed,omitempty"`
	Finding  string `json:"finding,omitempty"`
	Slice    int    `json:"slice,omitempty"`
	Source   string `json:"source,omitempty"`
	Positive bool   `json:"positive"`
}

// tensors writes model input tensors with the preprocessing a manifest
// declares — the code serving runs — from phantoms or DICOM files, so the
// reference models are trained on exactly what they will be given.
func tensors(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, _ := settingsFlags("tensors", tensorsSynopsis, stderr)
	manifest := fs.String("manifest", "", "manifest (or training template) whose preprocessing to apply")
	out := fs.String("out", "", "output folder")
	kind := fs.String("phantoms", "", "generate phantoms of this kind instead of reading files")
	seeds := fs.String("seeds", "", "phantom seeds FROM-TO (inclusive)")
	findings := fs.String("findings", "", "comma list of findings cycled over the seeds (default: none and every finding of the kind)")
	nslices := fs.Int("slices", 0, "CT slices per phantom series (0: the phantom default)")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if *manifest == "" || *out == "" || (*kind == "") == (len(paths) == 0) {
		fs.Usage()
		return 2
	}
	m, err := models.ReadManifest(*manifest)
	if err != nil {
		fmt.Fprintf(stderr, "radgate tensors: %v\n", err)
		return 2
	}
	w, err := newTensorWriter(*out, *manifest, m)
	if err != nil {
		fmt.Fprintf(stderr, "radgate tensors: %v\n", err)
		return 1
	}
	prog := newTicker(stderr)
	if *kind != "" {
		err = phantomTensors(ctx, w, m, phantom.Kind(*kind), *seeds, *findings, *nslices, prog)
	} else {
		var files []string
		if files, err = expandPaths(paths); err == nil {
			err = fileTensors(ctx, w, files, prog)
		}
	}
	if cerr := w.close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "radgate tensors: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d items of %v into %s\n", w.meta.Count, w.meta.ItemShape, *out)
	return 0
}

func phantomTensors(ctx context.Context, w *tensorWriter, m models.Manifest, kind phantom.Kind, seeds, findings string, nslices int, prog *ticker) error {
	from, to, err := parseRange(seeds)
	if err != nil {
		return err
	}
	cycle := phantomFindings(kind)
	if findings != "" {
		cycle = cycle[:0]
		for _, f := range strings.Split(findings, ",") {
			cycle = append(cycle, phantom.Finding(f))
		}
	}
	for seed := from; seed <= to; seed++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := cycle[int(seed%uint64(len(cycle)))]
		insts, err := phantom.Generate(phantom.Spec{Kind: kind, Finding: f, Seed: seed, Slices: nslices})
		if err != nil {
			return err
		}
		for i, inst := range insts {
			im, err := imaging.Load(bytes.NewReader(inst.Data))
			if err != nil {
				return fmt.Errorf("phantom seed %d slice %d: %w", seed, i, err)
			}
			y := make([]float32, len(m.Labels))
			for k, l := range m.Labels {
				if inst.Positive && l.Name == string(f) {
					y[k] = 1
				}
			}
			if err := w.add(im, y, tensorItem{Seed: seed, Finding: string(f), Slice: i, Positive: inst.Positive}); err != nil {
				return err
			}
		}
		prog.tick("phantoms", int(seed-from+1), int(to-from+1))
	}
	return nil
}

// phantomFindings is none followed by the kind's findings.
func phantomFindings(kind phantom.Kind) []phantom.Finding {
	if kind == phantom.KindCTHead {
		return []phantom.Finding{phantom.None, phantom.Hemorrhage}
	}
	return []phantom.Finding{phantom.None, phantom.Pneumothorax, phantom.Effusion}
}

func fileTensors(ctx context.Context, w *tensorWriter, files []string, prog *ticker) error {
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		im, err := imaging.LoadFile(f)
		if err != nil {
			return err
		}
		if err := w.add(im, make([]float32, len(w.meta.Labels)), tensorItem{Source: f}); err != nil {
			return err
		}
		prog.tick("files", i+1, len(files))
	}
	return nil
}

func parseRange(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err1 := strconv.ParseUint(a, 10, 64)
	to, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || to < from {
		return 0, 0, fmt.Errorf("--seeds %q: want FROM-TO", s)
	}
	return from, to, nil
}

type tensorWriter struct {
	dir        string
	meta       tensorsMeta
	m          models.Manifest
	x, y       *os.File
	bx, by     *bufio.Writer
	items      *json.Encoder
	itemsFile  *os.File
	buf        []float32
	scratchOut []byte
}

func newTensorWriter(dir, manifestPath string, m models.Manifest) (*tensorWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &tensorWriter{dir: dir, m: m, buf: make([]float32, m.Preprocess.Len())}
	w.meta = tensorsMeta{Manifest: manifestPath, ItemShape: m.ItemShape()}
	for _, l := range m.Labels {
		w.meta.Labels = append(w.meta.Labels, l.Name)
	}
	var err error
	if w.x, err = os.Create(filepath.Join(dir, "x.f32")); err != nil {
		return nil, err
	}
	if w.y, err = os.Create(filepath.Join(dir, "y.f32")); err != nil {
		return nil, err
	}
	if w.itemsFile, err = os.Create(filepath.Join(dir, "items.jsonl")); err != nil {
		return nil, err
	}
	w.bx, w.by, w.items = bufio.NewWriterSize(w.x, 1<<20), bufio.NewWriter(w.y), json.NewEncoder(w.itemsFile)
	return w, nil
}

// add writes every frame of im with the targets y.
func (w *tensorWriter) add(im *imaging.Image, y []float32, it tensorItem) error {
	for f := range im.Frames {
		if err := w.m.Preprocess.Apply(im, f, w.buf); err != nil {
			return err
		}
		if err := writeFloats(w.bx, w.buf, &w.scratchOut); err != nil {
			return err
		}
		if err := writeFloats(w.by, y, &w.scratchOut); err != nil {
			return err
		}
		if err := w.items.Encode(it); err != nil {
			return err
		}
		w.meta.Count++
	}
	return nil
}

func writeFloats(bw *bufio.Writer, v []float32, scratch *[]byte) error {
	b := slices.Grow((*scratch)[:0], 4*len(v))[:4*len(v)]
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	*scratch = b
	_, err := bw.Write(b)
	return err
}

func (w *tensorWriter) close() error {
	errs := []error{w.bx.Flush(), w.by.Flush(), w.x.Close(), w.y.Close(), w.itemsFile.Close()}
	meta, err := json.MarshalIndent(w.meta, "", "  ")
	errs = append(errs, err, os.WriteFile(filepath.Join(w.dir, "meta.json"), meta, 0o644))
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// ticker prints progress of a long CLI operation to stderr, at most
// every half second.
type ticker struct {
	w    io.Writer
	last time.Time
}

func newTicker(w io.Writer) *ticker { return &ticker{w: w} }

func (t *ticker) tick(what string, done, total int) {
	if done < total && time.Since(t.last) < 500*time.Millisecond {
		return
	}
	t.last = time.Now()
	fmt.Fprintf(t.w, "\r%s: %d/%d", what, done, total)
	if done == total {
		fmt.Fprintln(t.w)
	}
}
