package deident

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Kind says which attribute a map entry's original came from.
type Kind string

// The kinds of values the map keeps.
const (
	KindPatientID      Kind = "patient-id"
	KindPatientName    Kind = "patient-name"
	KindAccession      Kind = "accession"
	KindStudyUID       Kind = "study-uid"
	KindSeriesUID      Kind = "series-uid"
	KindSOPInstanceUID Kind = "sop-instance-uid"
)

// Pair is one map entry: an original value and the pseudonym issued for it.
type Pair struct {
	Kind      Kind   `json:"k"`
	Original  string `json:"o"`
	Pseudonym string `json:"p"`
}

// Files of a map directory.
const (
	secretFile = "secret"    // 32 random bytes, the site's HMAC key
	mapFile    = "map.jsonl" // one Pair per line, appended
	secretLen  = 32          // bytes of key, HMAC-SHA-256's block-size half
	dirMode    = os.FileMode(0o700)
	fileMode   = os.FileMode(0o600)
)

// Map is the local re-identification map: the site secret from which
// every pseudonym and new UID is derived, and every original → pseudonym
// pair issued, so that an authorised person can re-identify a result.
// It holds PHI and must never leave the site; see the package comment.
// It is safe for concurrent use.
type Map struct {
	mu      sync.Mutex
	dir     string
	f       *os.File // nil once closed
	secret  []byte
	byPseud map[string]Pair
	byOrig  map[Kind]map[string]string
}

// OpenMap opens (creating on first use) the map in dir — the gateway's
// DataDir/deident — with dir at 0700 and its files at 0600, creating the
// site secret with crypto/rand. A torn last line (a crash in the middle
// of an append) is cut off; any other bad line is ErrMapCorrupt.
func OpenMap(dir string) (*Map, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("deident: map: %w", err)
	}
	// MkdirAll keeps the mode of a folder that already exists.
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, fmt.Errorf("deident: map: %w", err)
	}
	secret, err := loadSecret(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, mapFile), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("deident: map: %w", err)
	}
	m := &Map{dir: dir, f: f, secret: secret, byPseud: map[string]Pair{}, byOrig: map[Kind]map[string]string{}}
	if err := m.load(); err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

func loadSecret(dir string) ([]byte, error) {
	p := filepath.Join(dir, secretFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if len(b) != secretLen {
			return nil, fmt.Errorf("%w: %s holds %d bytes, not %d", ErrMapCorrupt, secretFile, len(b), secretLen)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("deident: map: %w", err)
	}
	b = make([]byte, secretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("deident: map: %w", err)
	}
	// Written under a temporary name and renamed, so that a crash never
	// leaves a short secret that would change every pseudonym.
	tmp := p + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("deident: map: %w", err)
	}
	return b, syncDir(dir)
}

func writeSynced(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	return nil
}

// load reads the whole map file, cuts a torn tail, and leaves the file
// offset at its end for appends.
func (m *Map) load() error {
	br := bufio.NewReader(m.f)
	var good int64
	for line := 1; ; line++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) {
			if len(b) > 0 { // torn last line: no newline
				if err := m.f.Truncate(good); err != nil {
					return fmt.Errorf("deident: map: %w", err)
				}
			}
			break
		}
		if err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrMapCorrupt, line, err)
		}
		var p Pair
		if err := json.Unmarshal(b, &p); err != nil || p.Kind == "" || p.Pseudonym == "" {
			// The line's content is PHI; only its number is reported.
			return fmt.Errorf("%w: line %d is not an entry", ErrMapCorrupt, line)
		}
		m.index(p)
		good += int64(len(b)) + 1
	}
	if _, err := m.f.Seek(good, io.SeekStart); err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	return nil
}

// readLine returns one line without its newline, at most MaxMapLineBytes;
// io.EOF with the bytes read when the stream ends before a newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxMapLineBytes+1 {
			return nil, fmt.Errorf("longer than %d bytes", MaxMapLineBytes)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

func (m *Map) index(p Pair) {
	m.byPseud[p.Pseudonym] = p
	if m.byOrig[p.Kind] == nil {
		m.byOrig[p.Kind] = map[string]string{}
	}
	m.byOrig[p.Kind][p.Original] = p.Pseudonym
}

// secretKey returns the site secret; ErrMapClosed after Close.
func (m *Map) secretKey() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return nil, ErrMapClosed
	}
	return m.secret, nil
}

// record appends the pairs not yet in the map in one write and one fsync:
// the group commit of one Dataset call.
func (m *Map) record(pairs []Pair) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return ErrMapClosed
	}
	var buf bytes.Buffer
	var fresh []Pair
	for _, p := range pairs {
		if old, ok := m.byOrig[p.Kind][p.Original]; ok && old == p.Pseudonym {
			continue
		}
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("deident: map: %w", err)
		}
		if len(b) > MaxMapLineBytes {
			return fmt.Errorf("deident: map: a %s value is longer than an entry may be", p.Kind)
		}
		buf.Write(b)
		buf.WriteByte('\n')
		fresh = append(fresh, p)
	}
	if len(fresh) == 0 {
		return nil
	}
	if _, err := m.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("deident: map: %w", err)
	}
	for _, p := range fresh {
		m.index(p)
	}
	return nil
}

// Lookup returns the original value a pseudonym (a patient pseudonym, a
// new UID, …) was issued for. The result is PHI.
func (m *Map) Lookup(pseudonym string) (original string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.byPseud[pseudonym]
	return p.Original, ok
}

// Pseudonym returns the pseudonym issued for an original value of a kind:
// the reverse of Lookup.
func (m *Map) Pseudonym(kind Kind, original string) (pseudonym string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pseudonym, ok = m.byOrig[kind][original]
	return pseudonym, ok
}

// Close closes the map file. Every recorded pair is already durable.
func (m *Map) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return nil
	}
	err := m.f.Close()
	m.f = nil
	return err
}
