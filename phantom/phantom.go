package phantom

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/radgate/radgate/dcm"
)

// Kind is the kind of image a Spec asks for.
type Kind string

// The kinds Generate writes.
const (
	KindCXR    Kind = "cxr"     // one PA chest radiograph (DX, for presentation)
	KindCTHead Kind = "ct-head" // one axial non-contrast head CT series
)

// Finding is what the phantom shows.
type Finding string

// The findings. Pneumothorax and Effusion go with KindCXR, Hemorrhage with
// KindCTHead; None goes with both.
const (
	None         Finding = "none"
	Pneumothorax Finding = "pneumothorax"
	Effusion     Finding = "effusion"
	Hemorrhage   Finding = "hemorrhage"
)

// Limits and defaults of a Spec.
const (
	// DefaultSlices is the number of CT head slices when Spec.Slices is 0.
	DefaultSlices = 24
	// MaxSlices bounds a CT head series: the head is covered by
	// ctCoverageMM whatever the count, so 128 slices are already thinner
	// than 1 mm and each one costs about 10 ms to render.
	MaxSlices = 128
)

// Errors Validate returns (wrapped with the detail).
var (
	ErrKind    = errors.New("phantom: unknown kind")
	ErrFinding = errors.New("phantom: finding does not fit the kind")
	ErrSlices  = errors.New("phantom: slice count out of range")
)

// Spec says which phantom to generate. The same Spec always yields the same
// bytes. Anatomy, exposure and noise depend only on Kind and Seed, so the
// studies of one seed with and without a finding differ only where the
// finding is.
type Spec struct {
	Kind    Kind
	Finding Finding
	Seed    uint64
	// Slices is the number of CT head slices (0: DefaultSlices); it must be
	// 0 for KindCXR.
	Slices int
}

// Instance is one generated SOP instance.
type Instance struct {
	SOPInstanceUID string
	Data           []byte // a complete DICOM Part 10 file
	// Positive says this image shows the finding (for CT: this slice
	// contains hemorrhage).
	Positive bool
}

// Validate reports whether s can be generated.
func (s Spec) Validate() error {
	switch s.Kind {
	case KindCXR:
		if s.Finding != None && s.Finding != Pneumothorax && s.Finding != Effusion {
			return fmt.Errorf("%w: %q with %q (want none, pneumothorax or effusion)", ErrFinding, s.Finding, s.Kind)
		}
		if s.Slices != 0 {
			return fmt.Errorf("%w: %d slices for a single radiograph (want 0)", ErrSlices, s.Slices)
		}
	case KindCTHead:
		if s.Finding != None && s.Finding != Hemorrhage {
			return fmt.Errorf("%w: %q with %q (want none or hemorrhage)", ErrFinding, s.Finding, s.Kind)
		}
		if s.Slices < 0 || s.Slices > MaxSlices {
			return fmt.Errorf("%w: %d (want 1 to %d, or 0 for %d)", ErrSlices, s.Slices, MaxSlices, DefaultSlices)
		}
	default:
		return fmt.Errorf("%w: %q (want %q or %q)", ErrKind, s.Kind, KindCXR, KindCTHead)
	}
	return nil
}

// Generate renders the phantom s describes: one instance for KindCXR,
// s.Slices instances of one series, ordered by InstanceNumber, for
// KindCTHead.
func Generate(s Spec) ([]Instance, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Kind == KindCXR {
		inst, err := writeCXR(s, renderCXR(s))
		if err != nil {
			return nil, err
		}
		return []Instance{inst}, nil
	}
	return writeCTHead(s, renderCTHead(s))
}

// StudyInstanceUID is the study's UID; it depends on every field of s.
func (s Spec) StudyInstanceUID() string { return s.uid("study", 0) }

func (s Spec) slices() int {
	if s.Kind == KindCTHead && s.Slices == 0 {
		return DefaultSlices
	}
	return s.Slices
}

// uid derives a UID under 2.25 (dcm.HashUID, PS3.5 B.2) from the spec
// (the slice count too: other slices are other instances), what it names
// and a slice index.
func (s Spec) uid(what string, slice int) string {
	return dcm.HashUID(string(s.Kind), string(s.Finding), strconv.FormatUint(s.Seed, 10), strconv.Itoa(s.slices()), what, strconv.Itoa(slice))
}

// newRand is a PCG generator seeded from the SHA-256 of parts, so each
// purpose (anatomy, finding, noise) draws from its own stream.
func newRand(parts ...string) *rand.Rand {
	h := digest(parts...)
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[8:16])))
}

func digest(parts ...string) [32]byte {
	return sha256.Sum256([]byte(strings.Join(parts, "/")))
}

// streams are the random streams of one spec.
type streams struct {
	anatomy *rand.Rand // shapes, exposure: Kind and Seed only
	noise   *rand.Rand // pixel noise: Kind and Seed only
	finding *rand.Rand // the finding's shape: Kind, Finding and Seed
}

func (s Spec) streams() streams {
	seed := strconv.FormatUint(s.Seed, 10)
	return streams{
		anatomy: newRand("radgate-phantom", string(s.Kind), "anatomy", seed),
		noise:   newRand("radgate-phantom", string(s.Kind), "noise", seed),
		finding: newRand("radgate-phantom", string(s.Kind), string(s.Finding), "finding", seed),
	}
}
