package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Errors of sealed records and their keys.
var (
	// ErrSealBroken: a sealed record, its header or its wrapped data key
	// does not authenticate (AES-GCM tag mismatch), or is cut short:
	// damage or tampering. No byte of such a chunk is returned.
	ErrSealBroken = errors.New("store: sealed record does not authenticate")
	// ErrUnknownKey: a record (or the data directory) is sealed under a
	// key-encryption key the KeyProvider does not hold: another key file,
	// or one that lost a KEK.
	ErrUnknownKey = errors.New("store: unknown key-encryption key")
	// ErrKeysRequired: the data directory holds sealed records and no
	// KeyProvider was given.
	ErrKeysRequired = errors.New("store: data directory is sealed and no keys are configured")
)

// Sealed record layout (the data of a log record; the log's own header,
// meta and CRCs are around it, unchanged). Integers are little endian.
//
//	0      magic "RGS1"
//	4      version (1)
//	5      KEK id length L (1..255)
//	6      KEK id
//	6+L    wrapped data key length W (uint16, 1..maxWrappedLen)
//	8+L    wrapped data key (KeyProvider.Wrap)
//	8+L+W  nonce prefix (4 random bytes)
//
// then the Part 10 file in chunks of sealChunk bytes (the last one
// shorter, possibly empty), each followed by its 16-byte GCM tag. This is
// the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
// Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO
// 2015): chunk i is AES-256-GCM (NIST SP 800-38D) under the record's data
// key with nonce = prefix || i (uint64 big endian: the deterministic
// construction of SP 800-38D 8.2.1, a fixed field and an invocation
// counter) and associated data = the header || i || final flag. So a chunk
// moved within the record, taken from another record (another data key),
// or left last by a truncation fails to authenticate; the header is bound
// into every chunk.
const (
	sealMagic     = "RGS1"
	sealVersion   = 1
	sealFixedLen  = 6 // magic, version, id length
	sealPrefixLen = 4
	// sealChunk is the plaintext of one chunk: the writer's only buffer,
	// and what a read that touches one byte decrypts.
	sealChunk = 64 << 10
	sealTag   = 16 // GCM tag, 128 bits (SP 800-38D 5.2.1.2)
	dekLen    = 32 // AES-256
	// maxWrappedLen bounds a wrapped data key, checked before it is
	// read: KeyFile's are 60 bytes, a KMS ciphertext a few hundred.
	maxWrappedLen = 1024
)

// sealedHeader is the header of a sealed record; raw is its encoding.
type sealedHeader struct {
	kek     string
	wrapped []byte
	prefix  [sealPrefixLen]byte
	raw     []byte
}

func (h *sealedHeader) encode() {
	b := make([]byte, 0, sealFixedLen+len(h.kek)+2+len(h.wrapped)+sealPrefixLen)
	b = append(b, sealMagic...)
	b = append(b, sealVersion, byte(len(h.kek)))
	b = append(b, h.kek...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h.wrapped)))
	b = append(b, h.wrapped...)
	h.raw = append(b, h.prefix[:]...)
}

// readSealedHeader reads a sealed record's header from r, checking each
// length before reading what it announces. Errors wrap ErrSealBroken.
func readSealedHeader(r io.Reader) (sealedHeader, error) {
	var h sealedHeader
	raw := make([]byte, sealFixedLen)
	if _, err := io.ReadFull(r, raw); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrSealBroken, err)
	}
	if string(raw[:4]) != sealMagic || raw[4] != sealVersion {
		return h, fmt.Errorf("%w: not a sealed record (magic or version)", ErrSealBroken)
	}
	idLen := int(raw[5])
	raw = append(raw, make([]byte, idLen+2)...)
	if _, err := io.ReadFull(r, raw[sealFixedLen:]); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrSealBroken, err)
	}
	h.kek = string(raw[sealFixedLen : sealFixedLen+idLen])
	if !validKeyID(h.kek) {
		return h, fmt.Errorf("%w: header: invalid key id", ErrSealBroken)
	}
	wrappedLen := int(binary.LittleEndian.Uint16(raw[sealFixedLen+idLen:]))
	if wrappedLen == 0 || wrappedLen > maxWrappedLen {
		return h, fmt.Errorf("%w: header: wrapped data key of %d bytes", ErrSealBroken, wrappedLen)
	}
	at := len(raw)
	raw = append(raw, make([]byte, wrappedLen+sealPrefixLen)...)
	if _, err := io.ReadFull(r, raw[at:]); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrSealBroken, err)
	}
	h.wrapped = raw[at : at+wrappedLen]
	copy(h.prefix[:], raw[at+wrappedLen:])
	h.raw = raw
	return h, nil
}

// plainSize is the plaintext length of a sealed record of n bytes whose
// header takes hdr: every chunk but the last is sealChunk+sealTag bytes,
// the last at least a tag.
func plainSize(n, hdr int64) (int64, error) {
	body := n - hdr
	if body < sealTag {
		return 0, fmt.Errorf("%w: record of %d bytes is shorter than its header and one tag", ErrSealBroken, n)
	}
	full, rest := body/(sealChunk+sealTag), body%(sealChunk+sealTag)
	switch {
	case rest == 0:
		return full * sealChunk, nil
	case rest < sealTag:
		return 0, fmt.Errorf("%w: the last chunk is shorter than a tag", ErrSealBroken)
	}
	return full*sealChunk + rest - sealTag, nil
}

// chunkCipher seals and opens the chunks of one record.
type chunkCipher struct {
	aead  cipher.AEAD
	nonce [12]byte // prefix || index
	aad   []byte   // header || index || final
}

func newChunkCipher(dek []byte, h sealedHeader) (*chunkCipher, error) {
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("%w: data key: %w", ErrSealBroken, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	c := &chunkCipher{aead: aead, aad: make([]byte, len(h.raw)+9)}
	copy(c.nonce[:], h.prefix[:])
	copy(c.aad, h.raw)
	return c, nil
}

// at sets the nonce and associated data for chunk i.
func (c *chunkCipher) at(i uint64, final bool) {
	binary.BigEndian.PutUint64(c.nonce[sealPrefixLen:], i)
	n := len(c.aad)
	binary.BigEndian.PutUint64(c.aad[n-9:], i)
	c.aad[n-1] = 0
	if final {
		c.aad[n-1] = 1
	}
}

// seal encrypts the plaintext b (capacity for the tag) in place.
func (c *chunkCipher) seal(b []byte, i uint64, final bool) []byte {
	c.at(i, final)
	return c.aead.Seal(b[:0], c.nonce[:], b, c.aad)
}

// open decrypts the sealed chunk b in place.
func (c *chunkCipher) open(b []byte, i uint64, final bool) ([]byte, error) {
	c.at(i, final)
	p, err := c.aead.Open(b[:0], c.nonce[:], b, c.aad)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d", ErrSealBroken, i)
	}
	return p, nil
}

// sealedBlobs is the Blobs decorator that seals records: a fresh data key
// per record, wrapped by the KeyProvider's current KEK. The log under it
// is unchanged (its crash safety, CRCs and keys); the meta, the reception
// details, stays plaintext. Records in segments below plainBefore were
// written before sealing was turned on and are read as they are.
type sealedBlobs struct {
	Blobs // the log: Segments, Reclaim, Reserve, Ping and Close pass through
	keys  KeyProvider
	// plainBefore: segments with lower ids predate the seal marker (see
	// sealLog); every later record must be sealed.
	plainBefore uint64
	bufs        sync.Pool // *[]byte of sealChunk+sealTag
}

func newSealedBlobs(b Blobs, keys KeyProvider, plainBefore uint64) *sealedBlobs {
	s := &sealedBlobs{Blobs: b, keys: keys, plainBefore: plainBefore}
	s.bufs.New = func() any { b := make([]byte, sealChunk+sealTag); return &b }
	return s
}

// Unwrap returns the Blobs under the decorator (New finds the Log so).
func (s *sealedBlobs) Unwrap() Blobs { return s.Blobs }

// logOf finds the Log under Blobs decorators.
func logOf(b Blobs) (*Log, bool) {
	for {
		switch v := b.(type) {
		case *Log:
			return v, true
		case interface{ Unwrap() Blobs }:
			b = v.Unwrap()
		default:
			return nil, false
		}
	}
}

// Create starts a sealed record: its header is the record's first data.
func (s *sealedBlobs) Create(ctx context.Context, meta []byte) (BlobWriter, error) {
	h := sealedHeader{kek: s.keys.Current()}
	if !validKeyID(h.kek) {
		return nil, fmt.Errorf("store: current key id %q: must be 1 to %d printable ASCII characters", h.kek, maxKeyIDLen)
	}
	dek := make([]byte, dekLen)
	rand.Read(dek)
	rand.Read(h.prefix[:])
	wrapped, err := s.keys.Wrap(ctx, h.kek, dek)
	if err != nil {
		return nil, fmt.Errorf("store: wrapping a data key: %w", err)
	}
	if len(wrapped) == 0 || len(wrapped) > maxWrappedLen {
		return nil, fmt.Errorf("store: wrapped data key of %d bytes (at most %d)", len(wrapped), maxWrappedLen)
	}
	h.wrapped = wrapped
	h.encode()
	c, err := newChunkCipher(dek, h)
	clear(dek) // the cipher holds its own key schedule
	if err != nil {
		return nil, err
	}
	w, err := s.Blobs.Create(ctx, meta)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h.raw); err != nil {
		w.Close()
		return nil, err
	}
	buf := s.bufs.Get().(*[]byte)
	return &sealedWriter{s: s, w: w, c: c, hdr: int64(len(h.raw)), buf: buf, chunk: (*buf)[:0], cached: -1}, nil
}

// Open returns the plaintext of a record, authenticated chunk by chunk as
// it is read.
func (s *sealedBlobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	id, _, n, ok := parseKey(key)
	if !ok || id < s.plainBefore {
		return s.Blobs.Open(ctx, key)
	}
	rc, err := s.Blobs.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	r, _, err := s.open(ctx, rc, n)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("store: blob %s: %w", key, err)
	}
	return sealedReadCloser{r, rc}, nil
}

// Replay hands fn the plaintext of each record, with its plaintext size.
// A record whose seal is broken reaches fn as a reader failing with
// ErrSealBroken (the store then keeps its segment and says so); a KEK the
// provider lacks, or a provider failing, stops the replay, since skipping
// those records would leave acknowledged instances out of the index.
func (s *sealedBlobs) Replay(ctx context.Context, marks map[uint64]int64, fn func(Recovered, io.Reader) error) error {
	return s.Blobs.Replay(ctx, marks, func(rec Recovered, data io.Reader) error {
		if rec.Mark.Segment < s.plainBefore {
			return fn(rec, data)
		}
		r, size, err := s.open(ctx, data, rec.Size)
		switch {
		case errors.Is(err, ErrSealBroken):
			return fn(rec, errReader{fmt.Errorf("store: blob %s: %w", rec.Key, err)})
		case err != nil:
			return fmt.Errorf("store: replay: blob %s: %w", rec.Key, err)
		}
		defer r.release()
		rec.Size = size
		return fn(rec, r)
	})
}

// open reads a sealed record's header from r (a record of n bytes) and
// unwraps its data key.
func (s *sealedBlobs) open(ctx context.Context, r io.Reader, n int64) (*sealedReader, int64, error) {
	h, err := readSealedHeader(r)
	if err != nil {
		return nil, 0, err
	}
	size, err := plainSize(n, int64(len(h.raw)))
	if err != nil {
		return nil, 0, err
	}
	dek, err := s.keys.Unwrap(ctx, h.kek, h.wrapped)
	if err != nil {
		return nil, 0, fmt.Errorf("record sealed under key %q: %w", h.kek, err)
	}
	if len(dek) != dekLen {
		return nil, 0, fmt.Errorf("%w: data key of %d bytes", ErrSealBroken, len(dek))
	}
	c, err := newChunkCipher(dek, h)
	clear(dek)
	if err != nil {
		return nil, 0, err
	}
	return &sealedReader{s: s, r: r, c: c, left: n - int64(len(h.raw)), buf: s.bufs.Get().(*[]byte)}, size, nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// sealedWriter encrypts a record as it is written, one chunk at a time,
// and reads back (ReadAt) by decrypting the chunks a read touches.
type sealedWriter struct {
	s      *sealedBlobs
	w      BlobWriter
	c      *chunkCipher
	hdr    int64   // the header's length: where chunk 0 starts
	buf    *[]byte // from s.bufs
	chunk  []byte  // plaintext not yet sealed; after end, the chunk cached
	n      int64   // plaintext accepted
	sealed uint64  // chunks written
	ended  bool    // the final chunk is written
	cached int64   // the chunk chunk holds after end; -1: none
}

func (w *sealedWriter) Write(p []byte) (int, error) {
	if w.ended {
		return 0, errors.New("store: record already finished")
	}
	total := len(p)
	for len(p) > 0 {
		// A full chunk is sealed only once more data shows it is not the
		// last: the final flag must go on the last one.
		if len(w.chunk) == sealChunk {
			if err := w.flush(false); err != nil {
				return total - len(p), err
			}
		}
		take := min(sealChunk-len(w.chunk), len(p))
		w.chunk = append(w.chunk, p[:take]...)
		p = p[take:]
	}
	w.n += int64(total)
	return total, nil
}

// flush seals the chunk in hand and writes it.
func (w *sealedWriter) flush(final bool) error {
	out := w.c.seal(w.chunk, w.sealed, final)
	w.chunk = w.chunk[:0]
	w.sealed++
	_, err := w.w.Write(out)
	return err
}

// end seals what is in hand as the final chunk: the full chunk Write held
// back, a shorter one, or an empty one when no data came at all.
func (w *sealedWriter) end() error {
	if w.ended {
		return nil
	}
	w.ended = true
	return w.flush(true)
}

// ReadAt reads back plaintext written so far; no Write may follow.
func (w *sealedWriter) ReadAt(p []byte, off int64) (int, error) {
	if err := w.end(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("store: negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= w.n {
			return n, io.EOF
		}
		i := off / sealChunk
		if err := w.load(i); err != nil {
			return n, err
		}
		c := copy(p[n:], w.chunk[off-i*sealChunk:])
		n += c
		off += int64(c)
	}
	return n, nil
}

// load decrypts chunk i into w.chunk.
func (w *sealedWriter) load(i int64) error {
	if w.cached == i {
		return nil
	}
	w.cached = -1
	plain := min(sealChunk, w.n-i*sealChunk)
	b := (*w.buf)[:plain+sealTag]
	if n, err := w.w.ReadAt(b, w.hdr+i*(sealChunk+sealTag)); n < len(b) {
		return fmt.Errorf("store: reading back sealed chunk %d: %w", i, err)
	}
	p, err := w.c.open(b, uint64(i), uint64(i) == w.sealed-1)
	if err != nil {
		return err
	}
	w.chunk, w.cached = p, i
	return nil
}

func (w *sealedWriter) Commit(ctx context.Context, seq uint64) (string, Mark, error) {
	if err := w.end(); err != nil {
		return "", Mark{}, err
	}
	return w.w.Commit(ctx, seq)
}

func (w *sealedWriter) Abort() error { return w.w.Abort() }

func (w *sealedWriter) Close() error {
	err := w.w.Close()
	if w.buf != nil {
		w.s.bufs.Put(w.buf)
		w.buf, w.chunk = nil, nil
	}
	return err
}

// sealedReader decrypts a sealed record's chunks as they are read.
type sealedReader struct {
	s     *sealedBlobs
	r     io.Reader // after the header
	c     *chunkCipher
	left  int64   // sealed bytes not yet read
	i     uint64  // the next chunk
	buf   *[]byte // from s.bufs
	plain []byte  // decrypted, not yet returned
	err   error
}

func (r *sealedReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next reads and opens the next chunk; io.EOF after the final one.
func (r *sealedReader) next() error {
	if r.left == 0 {
		return io.EOF
	}
	if r.buf == nil {
		return ErrClosed
	}
	n := min(sealChunk+sealTag, r.left)
	b := (*r.buf)[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: chunk %d cut short", ErrSealBroken, r.i)
		}
		return err
	}
	p, err := r.c.open(b, r.i, n == r.left)
	if err != nil {
		return err
	}
	r.plain, r.left = p, r.left-n
	r.i++
	return nil
}

// release gives the buffer back; the reader reads no more.
func (r *sealedReader) release() {
	if r.buf != nil {
		r.s.bufs.Put(r.buf)
		r.buf, r.plain = nil, nil
	}
}

type sealedReadCloser struct {
	*sealedReader
	rc io.Closer
}

func (r sealedReadCloser) Close() error {
	r.release()
	return r.rc.Close()
}

// The seal marker, DataDir/seal.json, says that the data directory holds
// sealed records, from which segment on, and under which KEK it was first
// sealed, with a data key wrapped by it to prove a KeyProvider holds that
// KEK:
//
//	{"format": "radgate-seal/1", "plaintext_before_segment": 0, "kek": "…", "check": "<base64>"}
//
// It is made durable before the first sealed record is written and never
// removed, so a directory once sealed is never opened without keys.
// Segments below plaintext_before_segment predate it and hold plaintext;
// a plaintext record in a later one is refused (ErrSealBroken), so
// nobody who can write the disk can slip in a forged unsealed instance
// (only the segment id decides, never the record's first bytes).
const (
	sealMarkerName   = "seal.json"
	sealMarkerFormat = "radgate-seal/1"
	// maxSealMarkerLen bounds the marker, checked before it is read.
	maxSealMarkerLen = 16 << 10
)

type sealMarker struct {
	Format      string `json:"format"`
	PlainBefore uint64 `json:"plaintext_before_segment"`
	KEK         string `json:"kek"`
	Check       []byte `json:"check"`
}

// parseSealMarker decodes and checks the seal marker.
func parseSealMarker(b []byte) (sealMarker, error) {
	var m sealMarker
	if len(b) > maxSealMarkerLen {
		return m, fmt.Errorf("more than %d bytes", maxSealMarkerLen)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return m, fmt.Errorf("not a seal marker: %w", err)
	}
	if d.More() {
		return m, errors.New("not a seal marker: data after the document")
	}
	switch {
	case m.Format != sealMarkerFormat:
		return m, fmt.Errorf("format %q, want %q", m.Format, sealMarkerFormat)
	case !validKeyID(m.KEK):
		return m, errors.New("invalid key id")
	case len(m.Check) == 0 || len(m.Check) > maxWrappedLen:
		return m, fmt.Errorf("check value of %d bytes", len(m.Check))
	}
	return m, nil
}

// sealLog returns the Blobs to use over lg (the log of dataDir) with keys:
//
//   - no marker, no keys: lg, plaintext as before;
//   - a marker and no keys: ErrKeysRequired;
//   - a marker and keys: sealed, once keys unwrap the marker's check
//     (ErrUnknownKey: another key file);
//   - keys and no marker: create is set (Open) makes the marker, with
//     every segment now in the log plaintext, and seals; read-only tools
//     (create unset) get lg.
func sealLog(ctx context.Context, dataDir string, lg *Log, keys KeyProvider, create bool) (Blobs, error) {
	path := filepath.Join(dataDir, sealMarkerName)
	m, found, err := readSealMarker(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("store: seal marker %s: %w", path, err)
	case found && keys == nil:
		return nil, fmt.Errorf("%w: %s (set the key file)", ErrKeysRequired, dataDir)
	case found:
		if _, err := keys.Unwrap(ctx, m.KEK, m.Check); err != nil {
			return nil, fmt.Errorf("store: the keys do not open %s, sealed under key %q: %w", dataDir, m.KEK, err)
		}
		return newSealedBlobs(lg, keys, m.PlainBefore), nil
	case keys == nil || !create:
		return lg, nil
	}
	m = sealMarker{Format: sealMarkerFormat, KEK: keys.Current()}
	if ids := lg.Segments(); len(ids) > 0 {
		m.PlainBefore = ids[len(ids)-1] + 1
	}
	check := make([]byte, dekLen)
	rand.Read(check)
	if m.Check, err = keys.Wrap(ctx, m.KEK, check); err != nil {
		return nil, fmt.Errorf("store: seal marker: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("store: seal marker: %w", err)
	}
	if err := writeFileDurable(path, append(b, '\n'), false); err != nil {
		return nil, fmt.Errorf("store: seal marker: %w", err)
	}
	return newSealedBlobs(lg, keys, m.PlainBefore), nil
}

func readSealMarker(path string) (sealMarker, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return sealMarker{}, false, nil
	}
	if err != nil {
		return sealMarker{}, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSealMarkerLen+1))
	if err != nil {
		return sealMarker{}, false, err
	}
	m, err := parseSealMarker(b)
	return m, true, err
}
