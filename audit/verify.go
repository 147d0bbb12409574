package audit

import (
	"bufio"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// BreakError is the first place a trail fails verification.
type BreakError struct {
	File   string // file name inside the trail folder (or HEAD, ANCHOR)
	Line   int    // 1-based line; 0 when the problem is the file itself
	Seq    uint64 // the seq expected there
	Reason string
	Err    error // ErrTampered, ErrTruncated or ErrMalformed
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("audit: trail broken at %s line %d (seq %d): %s", e.File, e.Line, e.Seq, e.Reason)
}

func (e *BreakError) Unwrap() error { return e.Err }

// FileSummary is what Verify found in one file.
type FileSummary struct {
	Name              string
	Records           int
	FirstSeq, LastSeq uint64
}

// Report is what Verify checked.
type Report struct {
	Records           int
	FirstSeq, LastSeq uint64
	First, Last       time.Time // record times of the first and last record
	Files             []FileSummary
	// Leftovers counts files wholly before the ANCHOR: a prune that was
	// interrupted after moving the anchor and before removing them.
	Leftovers int
}

// chain is where the next record must continue the chain.
type chain struct {
	key  []byte
	next uint64 // the seq the next record must have
	prev string // the hash it must point back to ("": not known, accept)
	last record
}

// scanFile checks every line of one file against c, advancing c. It
// returns the offset just past the last good line (where Open may cut a
// partial tail) and the first break, if any.
func (c *chain) scanFile(dir string, f trailFile, visit func(record)) (int64, *BreakError, error) {
	fh, err := os.Open(filepath.Join(dir, f.Name))
	if err != nil {
		return 0, nil, err
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, MaxRecordBytes)
	var off int64
	for n := 1; ; n++ {
		brk := func(sentinel error, format string, a ...any) (int64, *BreakError, error) {
			return off, &BreakError{File: f.Name, Line: n, Seq: c.next, Reason: fmt.Sprintf(format, a...), Err: sentinel}, nil
		}
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return brk(ErrMalformed, "line longer than %d bytes", MaxRecordBytes)
		case errors.Is(err, io.EOF) && len(line) == 0:
			return off, nil, nil
		case errors.Is(err, io.EOF):
			return brk(ErrTruncated, "partial last line of %d bytes (a write cut short by a crash, or a cut file)", len(line))
		case err != nil:
			return off, nil, err
		}
		r, err := parseRecord(line)
		if err != nil {
			return brk(ErrMalformed, "%v", err)
		}
		if r.Seq != c.next {
			return brk(ErrTampered, "seq %d where %d belongs (record deleted, inserted or moved)", r.Seq, c.next)
		}
		if c.prev != "" && r.Prev != c.prev {
			return brk(ErrTampered, "prev hash does not match the previous record's hash")
		}
		if !hmac.Equal([]byte(sum(c.key, r.Seq, r.Time, r.Prev, r.Msg)), []byte(r.Hash)) {
			return brk(ErrTampered, "hash does not match the record's content")
		}
		off += int64(len(line))
		c.next, c.prev, c.last = r.Seq+1, r.Hash, r
		if visit != nil {
			visit(r)
		}
	}
}

// Verify re-reads the whole trail in dir and checks, read-only: every line
// complete and canonical, seq continuous across files, each prev equal to
// the previous record's hash, each hash the HMAC of its record, the ANCHOR
// (where the chain starts after pruning) and the HEAD (the last committed
// record, so a cut tail is seen). A break is returned as a *BreakError
// (errors.Is ErrTampered, ErrTruncated or ErrMalformed) with the Report of
// what was good before it.
func Verify(dir string) (Report, error) { return VerifyProgress(dir, nil) }

// VerifyProgress is Verify, calling progress after each file.
func VerifyProgress(dir string, progress func(FileSummary)) (Report, error) {
	var rep Report
	key, err := loadKey(dir, false)
	if err != nil {
		return rep, err
	}
	files, err := listFiles(dir)
	if err != nil {
		return rep, err
	}
	head, hasHead, err := readMark(dir, headFile, key)
	if err != nil {
		return rep, markBreak(headFile, err)
	}
	anchor, hasAnchor, err := readMark(dir, anchorFile, key)
	if err != nil {
		return rep, markBreak(anchorFile, err)
	}
	c := chain{key: key, next: 1, prev: zeroHash}
	if hasAnchor {
		c.next, c.prev = anchor.Seq, anchor.Hash
	}
	for len(files) > 1 && files[1].First <= c.next {
		files = files[1:]
		rep.Leftovers++
	}
	var headSeen bool
	for _, f := range files {
		if f.First != c.next {
			return rep, &BreakError{File: f.Name, Seq: c.next, Err: ErrTampered,
				Reason: fmt.Sprintf("file starts at seq %d; the chain continues at %d (a file or records missing)", f.First, c.next)}
		}
		sum := FileSummary{Name: f.Name}
		var brkHead *BreakError
		_, brk, err := c.scanFile(dir, f, func(r record) {
			if sum.Records == 0 {
				sum.FirstSeq = r.Seq
			}
			sum.Records++
			sum.LastSeq = r.Seq
			t, _ := time.Parse(timeLayout, r.Time)
			if rep.Records == 0 {
				rep.FirstSeq, rep.First = r.Seq, t
			}
			rep.Records++
			rep.LastSeq, rep.Last = r.Seq, t
			if hasHead && r.Seq == head.Seq {
				headSeen = true
				if r.Hash != head.Hash && brkHead == nil {
					brkHead = &BreakError{File: f.Name, Line: sum.Records, Seq: r.Seq, Err: ErrTampered,
						Reason: "record differs from the one HEAD committed"}
				}
			}
		})
		if err != nil {
			return rep, err
		}
		if brk == nil {
			brk = brkHead
		}
		if brk != nil {
			return rep, brk
		}
		rep.Files = append(rep.Files, sum)
		if progress != nil {
			progress(sum)
		}
	}
	switch {
	case !hasHead && rep.Records > 0:
		return rep, &BreakError{File: headFile, Seq: c.next, Err: ErrTruncated, Reason: "HEAD missing"}
	case hasHead && !headSeen && head.Seq > 0:
		brk := &BreakError{File: headFile, Seq: c.next, Err: ErrTruncated}
		if n := len(rep.Files); n > 0 {
			brk.File, brk.Line = rep.Files[n-1].Name, rep.Files[n-1].Records+1
		}
		brk.Reason = fmt.Sprintf("HEAD committed seq %d but the trail ends before it (tail removed)", head.Seq)
		return rep, brk
	}
	return rep, nil
}

func markBreak(name string, err error) error {
	var sentinel error = ErrMalformed
	if errors.Is(err, ErrTampered) {
		sentinel = ErrTampered
	} else if !errors.Is(err, ErrMalformed) {
		return err
	}
	return &BreakError{File: name, Reason: err.Error(), Err: sentinel}
}
