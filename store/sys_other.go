//go:build !linux

package store

import "os"

// startWriteback is a no-op where sync_file_range(2) does not exist; the
// fsync does all the work.
func startWriteback(*os.File, int64, int64) {}

// fdatasync is fsync where fdatasync(2) is not available.
func fdatasync(f *os.File) error { return f.Sync() }

// allocate sets f's size; the file system allocates on write.
func allocate(f *os.File, size int64) error { return f.Truncate(size) }

// zeroFill writes zeros over [from, size) of f through the page cache.
func zeroFill(f *os.File, from, size int64) error { return zeroFillBuffered(f, from, size) }

// punchHole writes zeros over [off, off+n) of f.
func punchHole(f *os.File, off, n int64) error { return zeroFillBuffered(f, off, off+n) }
