package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits and names, in one place.
const (
	// MaxRecordBytes bounds one record line (its XML message and the JSON
	// around it); a longer line is refused before it is allocated. An
	// audit message with a few studies is a few KiB.
	MaxRecordBytes = 1 << 20

	hashSize = sha256.Size
	keySize  = 32 // HMAC-SHA-256 key, the hash's block-size-safe length

	keyFile    = "chain.key"
	headFile   = "HEAD"
	anchorFile = "ANCHOR"
	cursorFile = "syslog.cursor"
	configFile = "CONFIG"
	filePrefix = "audit-"
	fileSuffix = ".jsonl"
	dateLayout = "20060102"

	// timeLayout is the record time; fixed width is not needed, but one
	// layout is, so a record re-encodes to the same bytes.
	timeLayout = time.RFC3339Nano
)

// record is one line of a trail file.
type record struct {
	Seq  uint64 `json:"seq"`
	Time string `json:"time"`
	Prev string `json:"prev"`
	Msg  string `json:"msg"`
	Hash string `json:"hash"`
}

// zeroHash is the prev of the first record of a trail that was never
// pruned.
var zeroHash = strings.Repeat("0", 2*hashSize)

// sum is the record's chain hash: HMAC-SHA-256 under the trail key over
// the length-prefixed (seq, time, prev, message). Length prefixes make the
// boundary between fields part of what is signed.
func sum(key []byte, seq uint64, tm, prev, msg string) string {
	mac := hmac.New(sha256.New, key)
	var b [8]byte
	mac.Write([]byte("radgate-audit-record-v1\x00"))
	binary.BigEndian.PutUint64(b[:], seq)
	mac.Write(b[:])
	for _, f := range []string{tm, prev, msg} {
		binary.BigEndian.PutUint32(b[:4], uint32(len(f)))
		mac.Write(b[:4])
		mac.Write([]byte(f))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// encode is the one canonical form of a record: the line a writer writes
// and the line a reader must find, byte for byte.
func (r record) encode() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the message is XML; keep it readable
	if err := enc.Encode(r); err != nil {
		panic(err) // a struct of strings and an integer always encodes
	}
	return buf.Bytes()
}

// parseRecord decodes one complete line (with its newline) and checks it
// is in canonical form, so an edit anywhere in it, even one JSON would
// ignore (spacing, escapes, key order), is found. It does not check the
// hash, which needs the key.
func parseRecord(line []byte) (record, error) {
	if len(line) > MaxRecordBytes {
		return record{}, fmt.Errorf("%w: line of %d bytes, limit %d", ErrMalformed, len(line), MaxRecordBytes)
	}
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return record{}, fmt.Errorf("%w: partial line (no newline)", ErrMalformed)
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(r.encode(), line) {
		return record{}, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	if _, err := time.Parse(timeLayout, r.Time); err != nil {
		return record{}, fmt.Errorf("%w: time: %v", ErrMalformed, err)
	}
	if !isHash(r.Prev) || !isHash(r.Hash) {
		return record{}, fmt.Errorf("%w: hash is not %d hex digits", ErrMalformed, 2*hashSize)
	}
	return r, nil
}

func isHash(s string) bool {
	if len(s) != 2*hashSize {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// mark is the HEAD (last committed record) or the ANCHOR (first kept
// record and its prev): a seq and a hash, MACed so neither can be
// rewritten to match a cut trail without the key.
type mark struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	MAC  string `json:"mac"`
}

func markMAC(key []byte, kind string, seq uint64, hash string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("radgate-audit-" + kind + "-v1\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	mac.Write(b[:])
	mac.Write([]byte(hash))
	return hex.EncodeToString(mac.Sum(nil))
}

// readMark reads HEAD or ANCHOR; ok is false when the file does not exist.
func readMark(dir, name string, key []byte) (m mark, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return mark{}, false, nil
	}
	if err != nil {
		return mark{}, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return mark{}, true, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	want := markMAC(key, name, m.Seq, m.Hash)
	if !hmac.Equal([]byte(want), []byte(m.MAC)) {
		return mark{}, true, fmt.Errorf("%w: %s: MAC does not match", ErrTampered, name)
	}
	return m, true, nil
}

func writeMark(dir, name string, key []byte, seq uint64, hash string) error {
	b, _ := json.Marshal(mark{Seq: seq, Hash: hash, MAC: markMAC(key, name, seq, hash)})
	return writeAtomic(dir, name, append(b, '\n'))
}

// writeAtomic replaces dir/name with data: temporary file, fsync, rename,
// fsync of the folder, so a crash leaves the old or the new file, whole.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadKey reads DIR/chain.key. With create, a missing key is made (0600)
// — but only for an empty trail: a new key for existing files would make
// every old record look forged.
func loadKey(dir string, create bool) ([]byte, error) {
	path := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		files, lerr := listFiles(dir)
		if lerr != nil {
			return nil, lerr
		}
		if len(files) > 0 {
			return nil, fmt.Errorf("%w: %s missing but trail files exist", ErrNoKey, keyFile)
		}
		key := make([]byte, keySize)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = f.Write([]byte(hex.EncodeToString(key) + "\n"))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		return key, syncDir(dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoKey, path)
	}
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != keySize {
		return nil, fmt.Errorf("%w: %s is not %d hex-encoded bytes", ErrNoKey, path, keySize)
	}
	return key, nil
}

// trailFile is one file of the trail: records from First on, written on Date
// (UTC). Files rotate daily, so every record in one is from that day.
type trailFile struct {
	Name  string
	First uint64
	Date  time.Time
}

func fileName(date time.Time, first uint64) string {
	return fmt.Sprintf("%s%s-%020d%s", filePrefix, date.UTC().Format(dateLayout), first, fileSuffix)
}

func parseFileName(name string) (trailFile, bool) {
	rest, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return trailFile{}, false
	}
	rest, ok = strings.CutSuffix(rest, fileSuffix)
	if !ok {
		return trailFile{}, false
	}
	ds, ss, ok := strings.Cut(rest, "-")
	if !ok || len(ss) != 20 {
		return trailFile{}, false
	}
	d, err := time.Parse(dateLayout, ds)
	if err != nil {
		return trailFile{}, false
	}
	first, err := strconv.ParseUint(ss, 10, 64)
	if err != nil || first == 0 {
		return trailFile{}, false
	}
	return trailFile{Name: name, First: first, Date: d}, true
}

// listFiles returns the trail files in seq order.
func listFiles(dir string) ([]trailFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []trailFile
	for _, e := range entries {
		if f, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b trailFile) int {
		switch {
		case a.First < b.First:
			return -1
		case a.First > b.First:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}
