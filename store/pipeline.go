package store

import (
	"errors"
	"hash"
	"io"
)

// chunkBuffers are the two buffers of one ingest's copy pipeline.
type chunkBuffers [2][]byte

func newChunkBuffers() *chunkBuffers {
	return &chunkBuffers{make([]byte, chunkSize), make([]byte, chunkSize)}
}

// copyHashed copies r to w, hashing every byte into h, with reading and
// writing overlapped: a second goroutine hashes and writes one chunk while
// this one reads the next from r (the network). At most two chunks are in
// memory. It stops after limit+1 bytes when limit > 0, so the caller can
// tell an oversized data set. The sender's read error and our write error
// come back apart: the first means the transfer broke, the second a local
// failure. The goroutine has ended when copyHashed returns.
func copyHashed(w io.Writer, h hash.Hash, r io.Reader, limit int64, bufs *chunkBuffers) (n int64, readErr, writeErr error) {
	full := make(chan []byte, 1)
	free := make(chan []byte, len(bufs))
	for _, b := range bufs {
		free <- b
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range full {
			if writeErr == nil {
				h.Write(b)
				_, writeErr = w.Write(b)
			}
			free <- b[:cap(b)]
		}
	}()
	for {
		buf := <-free
		if limit > 0 && int64(len(buf)) > limit+1-n {
			buf = buf[:limit+1-n]
		}
		m, err := io.ReadFull(r, buf)
		n += int64(m)
		if m > 0 {
			full <- buf[:m]
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if limit > 0 && n > limit {
			break
		}
	}
	close(full)
	<-done // writeErr is the goroutine's; reading it after done is safe
	return n, readErr, writeErr
}
