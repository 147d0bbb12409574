package models

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/radgate/radgate/imaging"
)

// ManifestFile is the manifest's name inside a model version's folder.
const ManifestFile = "manifest.yaml"

// Manifest describes one version of a model: what it is, what it takes,
// how to prepare its input from DICOM, and what its outputs mean.
type Manifest struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Task names what the model is for, e.g. "cxr-triage" or "ct-ich";
	// routing and the results use it.
	Task        string `yaml:"task"`
	Description string `yaml:"description"`
	// Manufacturer names who made the model (the SR's algorithm
	// identification, TID 4019).
	Manufacturer string `yaml:"manufacturer"`
	// TrainedOnPhantoms says the model learnt from synthetic phantoms
	// only; its SRs say so in their disclaimer.
	TrainedOnPhantoms bool `yaml:"trained_on_phantoms"`
	// Card is the model card (Markdown), relative to the manifest.
	Card string `yaml:"card"`
	// File is the ONNX model, relative to the manifest, and SHA256 its
	// lower-case hex digest: a model whose file does not match is refused.
	File   string `yaml:"file"`
	SHA256 string `yaml:"sha256"`
	// Remote, when set, serves the model from a KServe v2 gRPC endpoint
	// (another radgate, a Triton server) instead of a local ONNX file;
	// File and SHA256 are then empty, and the endpoint's model metadata
	// must match Input and Output.
	Remote *Remote `yaml:"remote"`
	// Hints say which instances the model is meant for.
	Hints Hints `yaml:"hints"`
	Input Input `yaml:"input"`
	// Preprocess turns one frame (a CT slice, a radiograph) into one
	// batch item of Input.
	Preprocess imaging.Recipe `yaml:"preprocess"`
	Output     Output         `yaml:"output"`
	// Aggregate combines per-frame scores into the study's: "none" (one
	// frame per study, as a radiograph) or "max" (the most suspicious slice
	// of a series decides, as for hemorrhage).
	Aggregate string   `yaml:"aggregate"`
	Labels    []Label  `yaml:"labels"`
	Batching  Batching `yaml:"batching"`
}

// Hints are the DICOM attributes a model's inputs have.
type Hints struct {
	Modalities []string `yaml:"modalities"`
	BodyParts  []string `yaml:"body_parts"`
	SOPClasses []string `yaml:"sop_classes"`
}

// Input is the model's input tensor.
type Input struct {
	Name string `yaml:"name"`
	// Shape with -1 for the batch axis, e.g. [-1, 1, 224, 224].
	Shape  []int64 `yaml:"shape"`
	Layout string  `yaml:"layout"` // NCHW
}

// Output is the model's output tensor [N, len(Labels)].
type Output struct {
	Name string `yaml:"name"`
	// Activation the gateway applies: "none" when the graph already
	// outputs probabilities, "sigmoid" when it outputs logits.
	Activation string `yaml:"activation"`
}

// Label is one output: a finding, coded.
type Label struct {
	Name    string  `yaml:"name"`
	Concept Concept `yaml:"concept"`
	// Threshold: a probability at or above it is positive.
	Threshold float64 `yaml:"threshold"`
	// Priority a positive sets on the reading worklist: STAT, HIGH or
	// ROUTINE (a positive never lowers a priority).
	Priority string `yaml:"priority"`
}

// Remote is where a remote model is served and how it is called.
type Remote struct {
	Address string `yaml:"address"` // host:port of the KServe v2 gRPC endpoint
	Model   string `yaml:"model"`   // its name there ("": this manifest's name)
	Version string `yaml:"version"` // its version there ("": the endpoint's choice)
	// Timeout bounds one call (0: DefaultRemoteTimeout); Retries is how
	// many more times a call that failed for want of capacity or
	// connectivity (gRPC Unavailable, ResourceExhausted) is made.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// DefaultRemoteTimeout bounds a call to a remote model without a timeout.
const DefaultRemoteTimeout = 30 * time.Second

// Concept is a coded concept (PS3.3 Table 8.8-1): scheme designator such
// as SCT (SNOMED CT), RADLEX or DCM, code value and meaning.
type Concept struct {
	Scheme  string `yaml:"scheme"`
	Code    string `yaml:"code"`
	Meaning string `yaml:"meaning"`
}

// Batching is the model's dynamic batching policy.
type Batching struct {
	// MaxBatch: at most this many frames in one Run.
	MaxBatch int `yaml:"max_batch"`
	// MaxQueueDelay: how long the first request of a batch may wait for
	// others to join it.
	MaxQueueDelay time.Duration `yaml:"max_queue_delay"`
}

// Limits on what a manifest may declare.
const (
	maxManifestBytes = 1 << 20
	maxLabels        = 256
	// maxBatch bounds a batch so one batch's tensor stays within memory
	// (256 × 3×512×512 float32 = 768 MiB).
	maxBatch = 256
	// maxQueueDelay: a batch never waits longer than this for company.
	maxQueueDelay = time.Second
)

// ErrManifest wraps every manifest problem; ErrChecksum a model file that
// does not match its manifest.
var (
	ErrManifest = errors.New("models: invalid manifest")
	ErrChecksum = errors.New("models: model file does not match its manifest")
)

var (
	// A name or version becomes a folder, a metric label and part of the
	// SR's algorithm identification: keep it to a safe alphabet.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	shaRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Priorities a positive label may set, lowest first.
var Priorities = []string{"ROUTINE", "HIGH", "STAT"}

// ReadManifest reads and validates a manifest file. Unknown keys are
// errors, so a misspelt setting is never silently ignored.
func ReadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, err
	}
	if len(b) > maxManifestBytes {
		return Manifest{}, fmt.Errorf("%w: %s: larger than %d bytes", ErrManifest, path, maxManifestBytes)
	}
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrManifest, path, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Validate checks the manifest on its own (not against the model file).
func (m Manifest) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !nameRE.MatchString(m.Name) {
		bad("name %q: want lower-case letters, digits, . _ -", m.Name)
	}
	if !nameRE.MatchString(m.Version) {
		bad("version %q: want lower-case letters, digits, . _ -", m.Version)
	}
	if m.Task == "" {
		bad("task missing")
	}
	inside := func(p string) bool { return filepath.IsLocal(p) }
	switch r := m.Remote; {
	case r != nil:
		if m.File != "" || m.SHA256 != "" {
			bad("remote: a remote model has no file or sha256")
		}
		if _, port, err := net.SplitHostPort(r.Address); err != nil || port == "" {
			bad("remote.address %q: want HOST:PORT of a KServe v2 gRPC endpoint", r.Address)
		}
		if r.Timeout < 0 || r.Retries < 0 || r.Retries > 10 {
			bad("remote: timeout %v, retries %d: want ≥ 0 and at most 10 retries", r.Timeout, r.Retries)
		}
	default:
		if !inside(m.File) {
			bad("file %q: want a path inside the model's folder", m.File)
		}
		if !shaRE.MatchString(m.SHA256) {
			bad("sha256 %q: want 64 lower-case hex digits", m.SHA256)
		}
	}
	if !inside(m.Card) {
		bad("card %q: want a model card inside the model's folder", m.Card)
	}
	if m.Input.Name == "" {
		bad("input.name missing")
	}
	if m.Input.Layout != "NCHW" {
		bad("input.layout %q: only NCHW is supported", m.Input.Layout)
	}
	if err := m.Preprocess.Validate(); err != nil {
		bad("preprocess: %v", err)
	} else if want := m.ItemShape(); !slices.Equal(m.Input.Shape, append([]int64{-1}, want...)) {
		bad("input.shape %v does not match the preprocessing's output [-1 %v]", m.Input.Shape, want)
	}
	if m.Output.Name == "" {
		bad("output.name missing")
	}
	if m.Output.Activation != "none" && m.Output.Activation != "sigmoid" {
		bad("output.activation %q: want none or sigmoid", m.Output.Activation)
	}
	if m.Aggregate != "none" && m.Aggregate != "max" {
		bad("aggregate %q: want none or max", m.Aggregate)
	}
	if len(m.Labels) == 0 || len(m.Labels) > maxLabels {
		bad("labels: want 1 to %d, got %d", maxLabels, len(m.Labels))
	}
	seen := map[string]bool{}
	for i, l := range m.Labels {
		if l.Name == "" || seen[l.Name] {
			bad("labels[%d]: name %q missing or repeated", i, l.Name)
		}
		seen[l.Name] = true
		if l.Concept.Scheme == "" || l.Concept.Code == "" || l.Concept.Meaning == "" {
			bad("labels[%d] %s: concept needs scheme, code and meaning", i, l.Name)
		}
		if math.IsNaN(l.Threshold) || l.Threshold <= 0 || l.Threshold >= 1 {
			bad("labels[%d] %s: threshold %v not in (0,1)", i, l.Name, l.Threshold)
		}
		if !slices.Contains(Priorities, l.Priority) {
			bad("labels[%d] %s: priority %q: want one of %v", i, l.Name, l.Priority, Priorities)
		}
	}
	if m.Batching.MaxBatch < 1 || m.Batching.MaxBatch > maxBatch {
		bad("batching.max_batch %d: want 1 to %d", m.Batching.MaxBatch, maxBatch)
	}
	if m.Batching.MaxQueueDelay < 0 || m.Batching.MaxQueueDelay > maxQueueDelay {
		bad("batching.max_queue_delay %v: want 0 to %v", m.Batching.MaxQueueDelay, maxQueueDelay)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrManifest, strings.Join(errs, "; "))
	}
	return nil
}

// ItemShape is one batch item's shape: channels, height, width.
func (m Manifest) ItemShape() []int64 {
	return []int64{int64(len(m.Preprocess.Channels)), int64(m.Preprocess.Size[0]), int64(m.Preprocess.Size[1])}
}

// ID is name@version, the key models are loaded under.
func (m Manifest) ID() string { return m.Name + "@" + m.Version }
