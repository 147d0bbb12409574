package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// KeyProvider holds the key-encryption keys (KEKs) that wrap the data key
// of each sealed record: envelope encryption, so that a KEK can be rotated
// without re-encrypting what it sealed (NIST SP 800-57 Part 1 Rev. 5,
// 6.1.1: key-wrapping keys). KeyFile is the built-in one; kms.PKCS11
// keeps the KEKs on an HSM, Wrap and Unwrap being the token's encrypt and
// decrypt; a network KMS (Vault transit, AWS KMS) fits the same way.
type KeyProvider interface {
	// Current names the KEK that new records are sealed under.
	Current() (id string)
	// Wrap encrypts a data key under the KEK id.
	Wrap(ctx context.Context, id string, dek []byte) ([]byte, error)
	// Unwrap decrypts what Wrap returned. Errors wrap ErrUnknownKey when
	// the provider holds no KEK id, ErrSealBroken when wrapped was not
	// made by Wrap under that KEK.
	Unwrap(ctx context.Context, id string, wrapped []byte) ([]byte, error)
}

// Key file format and limits.
const (
	keyFileFormat = "radgate-keys/1"
	// kekLen: AES-256 (FIPS 197) for the KEKs as for the data keys.
	kekLen = 32
	// maxKeyFileLen bounds the key file, checked before it is read: a
	// KEK takes about 120 bytes of it, so this is thousands of rotations.
	maxKeyFileLen = 1 << 20
	// maxKeyIDLen bounds a KEK id: one length byte in the sealed header,
	// room for a KMS key ARN.
	maxKeyIDLen = 255
	// wrapLabel starts the associated data of a wrapped data key; the KEK
	// id follows, so a wrapped key moved under another id fails to unwrap.
	wrapLabel = "radgate-dek/1\x00"
)

// KeyFile is a KeyProvider kept in a local file: a JSON document, mode
// 0600, listing AES-256 KEKs with their ids and creation times, oldest
// first; the last is current.
//
//	{"format": "radgate-keys/1",
//	 "keys": [{"id": "…", "created": "2026-01-31T10:15:00Z", "key": "<base64, 32 bytes>"}]}
//
// A data key is wrapped with AES-256-GCM (NIST SP 800-38D) under the KEK,
// with a random 96-bit nonce (SP 800-38D 8.2.2) carried in front of the
// ciphertext and the KEK id as associated data: 60 bytes. SP 800-38D 8.3
// allows 2^32 wraps per KEK with random nonces, one per stored instance;
// rotate well before that. Old KEKs stay in the file, so what they sealed
// stays readable. Methods are safe for concurrent use.
type KeyFile struct {
	path string

	mu    sync.RWMutex
	keks  []kek // oldest first
	aeads map[string]cipher.AEAD
}

// kek is one key-encryption key as the key file holds it.
type kek struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"` // base64 in the file
}

type keyFileDoc struct {
	Format string `json:"format"`
	Keys   []kek  `json:"keys"`
}

// GenerateKeyFile creates a key file at path holding one new KEK, mode
// 0600. It refuses to replace an existing file (the error wraps
// fs.ErrExist): losing a KEK loses every record it sealed.
func GenerateKeyFile(path string) (*KeyFile, error) {
	keks := []kek{newKEK()}
	b, err := encodeKeyFile(keks)
	if err != nil {
		return nil, err
	}
	if err := writeFileDurable(path, b, false); err != nil {
		return nil, fmt.Errorf("store: create key file: %w", err)
	}
	return newKeyFile(path, keks)
}

// OpenKeyFile reads the key file at path. It refuses one that its group or
// other users may read or write: the KEKs open every stored instance.
func OpenKeyFile(path string) (*KeyFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	keks, err := readKeyFile(f)
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return newKeyFile(path, keks)
}

// readKeyFile checks the mode and size of an open key file, then parses it.
func readKeyFile(f *os.File) ([]kek, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o lets other users at the keys; chmod 600 it", perm)
	}
	if fi.Size() > maxKeyFileLen {
		return nil, fmt.Errorf("%d bytes, more than the %d a key file may hold", fi.Size(), maxKeyFileLen)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileLen+1))
	if err != nil {
		return nil, err
	}
	return parseKeyFile(b)
}

// parseKeyFile decodes and checks a key file's contents: its format, at
// least one KEK, ids unique and of printable ASCII, keys of 256 bits.
func parseKeyFile(b []byte) ([]kek, error) {
	if len(b) > maxKeyFileLen {
		return nil, fmt.Errorf("more than %d bytes", maxKeyFileLen)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var doc keyFileDoc
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a key file: %w", err)
	}
	if d.More() {
		return nil, errors.New("not a key file: data after the document")
	}
	if doc.Format != keyFileFormat {
		return nil, fmt.Errorf("format %q, want %q", doc.Format, keyFileFormat)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	seen := make(map[string]bool, len(doc.Keys))
	for i, k := range doc.Keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("key %d: id must be 1 to %d printable ASCII characters", i, maxKeyIDLen)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("key %d: id %q listed twice", i, k.ID)
		}
		seen[k.ID] = true
		if len(k.Key) != kekLen {
			return nil, fmt.Errorf("key %q: %d bytes, want %d (AES-256)", k.ID, len(k.Key), kekLen)
		}
		if k.Created.IsZero() {
			return nil, fmt.Errorf("key %q: no creation time", k.ID)
		}
	}
	return doc.Keys, nil
}

// validKeyID: the id goes into every sealed header and into error
// messages, so no control characters and no spaces.
func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func encodeKeyFile(keks []kek) ([]byte, error) {
	b, err := json.MarshalIndent(keyFileDoc{Format: keyFileFormat, Keys: keks}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	return append(b, '\n'), nil
}

// newKEK makes a KEK: 256 random bits under a random 130-bit id.
func newKEK() kek {
	k := kek{ID: rand.Text(), Created: time.Now().UTC().Truncate(time.Second), Key: make([]byte, kekLen)}
	rand.Read(k.Key) // never fails (crypto/rand: it crashes the program instead)
	return k
}

func newKeyFile(path string, keks []kek) (*KeyFile, error) {
	kf := &KeyFile{path: path}
	if err := kf.set(keks); err != nil {
		return nil, err
	}
	return kf, nil
}

// set installs keks, building a GCM for each.
func (kf *KeyFile) set(keks []kek) error {
	aeads := make(map[string]cipher.AEAD, len(keks))
	for _, k := range keks {
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return fmt.Errorf("store: key %q: %w", k.ID, err)
		}
		a, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return fmt.Errorf("store: key %q: %w", k.ID, err)
		}
		aeads[k.ID] = a
	}
	kf.mu.Lock()
	kf.keks, kf.aeads = keks, aeads
	kf.mu.Unlock()
	return nil
}

// Current is the id of the newest KEK.
func (kf *KeyFile) Current() string {
	kf.mu.RLock()
	defer kf.mu.RUnlock()
	return kf.keks[len(kf.keks)-1].ID
}

// Wrap seals dek under the KEK id (AES-256-GCM, random nonce, the id as
// associated data).
func (kf *KeyFile) Wrap(_ context.Context, id string, dek []byte) ([]byte, error) {
	a, err := kf.aead(id)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nil, dek, DataKeyAAD(id)), nil
}

// Unwrap opens what Wrap sealed under the KEK id.
func (kf *KeyFile) Unwrap(_ context.Context, id string, wrapped []byte) ([]byte, error) {
	a, err := kf.aead(id)
	if err != nil {
		return nil, err
	}
	dek, err := a.Open(nil, nil, wrapped, DataKeyAAD(id))
	if err != nil {
		return nil, fmt.Errorf("%w: the data key does not unwrap under key %q", ErrSealBroken, id)
	}
	return dek, nil
}

func (kf *KeyFile) aead(id string) (cipher.AEAD, error) {
	kf.mu.RLock()
	a, ok := kf.aeads[id]
	kf.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q is not in key file %s", ErrUnknownKey, id, kf.path)
	}
	return a, nil
}

// DataKeyAAD is the associated data a data key wrapped under the KEK id is
// bound to (wrapLabel, then the id): a KeyProvider that wraps with an AEAD
// uses it, so that a wrapped key moved under another id fails to unwrap.
func DataKeyAAD(id string) []byte { return append([]byte(wrapLabel), id...) }

// Reload reads the key file again, so that a KEK added by a rotation in
// another process (radgate keys rotate while radgate runs) seals the new
// records from now on. It reports whether the current KEK changed. A file
// that lacks a KEK this KeyFile holds, or holds it with other key bytes,
// is refused and the keys in use are kept (the error wraps ErrUnknownKey):
// what that KEK sealed would be unreadable at the next start. So is a file
// that cannot be read or whose mode lets others read it.
func (kf *KeyFile) Reload() (rotated bool, err error) {
	f, err := os.Open(kf.path)
	if err != nil {
		return false, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	keks, err := readKeyFile(f)
	if err != nil {
		return false, fmt.Errorf("store: key file %s: %w", kf.path, err)
	}
	kf.mu.RLock()
	held, current := kf.keks, kf.keks[len(kf.keks)-1].ID
	kf.mu.RUnlock()
	for _, h := range held {
		i := slices.IndexFunc(keks, func(k kek) bool { return k.ID == h.ID })
		if i < 0 || !bytes.Equal(keks[i].Key, h.Key) {
			return false, fmt.Errorf("%w: key file %s no longer holds key %q as it was; the keys in use are kept (restore the file: what that key sealed needs it)",
				ErrUnknownKey, kf.path, h.ID)
		}
	}
	if len(keks) == len(held) {
		return false, nil
	}
	if err := kf.set(keks); err != nil {
		return false, err
	}
	return keks[len(keks)-1].ID != current, nil
}

// Rotate adds a new KEK to the key file, which becomes current, and
// returns its id; every older KEK stays, so what it sealed stays readable.
// The file is replaced atomically (a new file, fsync, rename, fsync of the
// folder): a crash leaves the old list or the new one. It appends to the
// file as it is on disk, under an flock of it, so two rotations at once
// cannot drop each other's key. This KeyFile seals under the new KEK at
// once; another process (a running radgate) sees it when it reloads the
// file (Reload).
func (kf *KeyFile) Rotate() (string, error) {
	// lockDataDir creates what is missing: never an empty key file.
	if _, err := os.Stat(kf.path); err != nil {
		return "", fmt.Errorf("store: key file: %w", err)
	}
	lock, err := lockDataDir(kf.path)
	if err != nil {
		return "", fmt.Errorf("store: key file %s: another process is changing it: %w", kf.path, err)
	}
	defer lock.Close()
	// A rotation that finished while this one waited replaced the file:
	// the lock is then on the old one.
	lfi, err := lock.Stat()
	if err != nil {
		return "", fmt.Errorf("store: key file: %w", err)
	}
	fi, err := os.Stat(kf.path)
	if err != nil || !os.SameFile(fi, lfi) {
		return "", fmt.Errorf("store: key file %s changed during the rotation; run it again", kf.path)
	}
	keks, err := readKeyFile(lock)
	if err != nil {
		return "", fmt.Errorf("store: key file %s: %w", kf.path, err)
	}
	k := newKEK()
	keks = append(keks, k)
	b, err := encodeKeyFile(keks)
	if err != nil {
		return "", err
	}
	if err := writeFileDurable(kf.path, b, true); err != nil {
		return "", fmt.Errorf("store: rotate key file: %w", err)
	}
	if err := kf.set(keks); err != nil {
		return "", err
	}
	return k.ID, nil
}

// writeFileDurable writes b to path, mode 0600, through a temporary file
// made durable first: renamed over path when replace is set, else linked
// to it, which fails (fs.ErrExist) when path exists. The folder is fsynced
// last, so the name survives a crash.
func writeFileDurable(path string, b []byte, replace bool) error {
	tmp := path + ".tmp-" + rand.Text()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if replace {
			err = os.Rename(tmp, path)
		} else {
			err = os.Link(tmp, path)
		}
	}
	if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	return syncDirPath(filepath.Dir(path))
}
