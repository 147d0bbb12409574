package store

import (
	"errors"
	"io"
)

// copyData copies r to w through buf. It stops after limit+1 bytes when
// limit > 0, so the caller can tell an oversized data set. The sender's
// read error and our write error come back apart: the first means the
// transfer broke, the second a local failure.
func copyData(w io.Writer, r io.Reader, limit int64, buf []byte) (n int64, readErr, writeErr error) {
	for {
		b := buf
		if limit > 0 && int64(len(b)) > limit+1-n {
			b = b[:limit+1-n]
		}
		m, err := io.ReadFull(r, b)
		n += int64(m)
		if m > 0 {
			if _, werr := w.Write(b[:m]); werr != nil {
				return n, nil, werr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
		if limit > 0 && n > limit {
			return n, nil, nil
		}
	}
}
