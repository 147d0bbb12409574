package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Model is one model version found in a repository.
type Model struct {
	Manifest
	// Dir is the folder holding the manifest: REPO/NAME/VERSION.
	Dir string
}

// Path is the ONNX file.
func (m Model) Path() string { return filepath.Join(m.Dir, m.File) }

// CardPath is the model card.
func (m Model) CardPath() string { return filepath.Join(m.Dir, m.Card) }

// Scan finds the models of the repository in dir: one folder per model,
// one subfolder per version, a manifest in each (dir/NAME/VERSION/
// manifest.yaml, the layout Triton's model repository uses). A version
// whose manifest is unreadable or invalid, or names another model or
// version than its folders, is returned among the errors, never silently
// skipped. Models come sorted by name, then version.
func Scan(dir string) ([]Model, []error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*", "*", ManifestFile))
	if err != nil {
		return nil, []error{err}
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, []error{fmt.Errorf("models: repository %s: %w", dir, err)}
	}
	var (
		found []Model
		errs  []error
	)
	for _, p := range paths {
		m, err := ReadManifest(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vdir := filepath.Dir(p)
		if filepath.Base(vdir) != m.Version || filepath.Base(filepath.Dir(vdir)) != m.Name {
			errs = append(errs, fmt.Errorf("%w: %s names %s, but lies in %s", ErrManifest, p, m.ID(),
				filepath.Join(filepath.Base(filepath.Dir(vdir)), filepath.Base(vdir))))
			continue
		}
		found = append(found, Model{Manifest: m, Dir: vdir})
	}
	slices.SortFunc(found, func(a, b Model) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return found, errs
}

// Verify checks the model's files against its manifest: the ONNX file's
// SHA-256 (a remote model has none) and the model card's presence. It
// does not load the model (the inference engine checks the tensors when
// it does).
func (m Model) Verify() error {
	if m.Remote == nil {
		if err := m.verifyFile(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(m.CardPath()); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: model card %s missing", ErrManifest, m.ID(), m.Card)
		}
		return err
	}
	return nil
}

// verifyFile checks the ONNX file's SHA-256.
func (m Model) verifyFile() error {
	f, err := os.Open(m.Path())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrChecksum, m.ID(), err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("models: %s: read %s: %w", m.ID(), m.File, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		return fmt.Errorf("%w: %s: %s has sha256 %s, manifest says %s", ErrChecksum, m.ID(), m.File, got, m.SHA256)
	}
	return nil
}
