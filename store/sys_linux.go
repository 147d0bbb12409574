package store

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a range of f to disk now,
// without waiting (sync_file_range(2) SYNC_FILE_RANGE_WRITE). It is only a
// head start for the fdatasync that makes the data durable; errors are
// left for that call to report.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// fdatasync makes f's data durable, and the metadata needed to read it
// back (fdatasync(2)); a record's commit changes no other metadata.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// allocate reserves size bytes of disk for f (fallocate(2)), so that
// writing a record never meets a full disk half way, and sets its size.
func allocate(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err != unix.EINTR {
			return err
		}
	}
}

// zeroFill writes zeros over [from, size) of f so that records later
// overwrite written blocks (an fdatasync then commits no extent change).
// from is page-aligned; the zeros go by O_DIRECT, a DMA from one zero
// buffer, so the page cache and the CPU are spared. Where the file system
// refuses O_DIRECT, the zeros go through the page cache.
func zeroFill(f *os.File, from, size int64) error {
	d, err := os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return zeroFillBuffered(f, from, size)
	}
	defer d.Close()
	z := alignedZeros()
	for off := from; off < size; {
		n := min(int64(len(z)), size-off)
		if n%directAlign != 0 {
			// The tail that is not a whole block goes through the cache.
			return zeroFillBuffered(f, off, size)
		}
		if _, err := d.WriteAt(z[:n], off); err != nil {
			if off == from {
				return zeroFillBuffered(f, from, size)
			}
			return err
		}
		off += n
	}
	return nil
}

// alignedZeros is a zeroBlock of zeros at a directAlign-aligned address,
// as O_DIRECT needs.
func alignedZeros() []byte {
	b := make([]byte, zeroBlock+directAlign)
	skip := int(directAlign - uintptr(unsafe.Pointer(&b[0]))%directAlign)
	return b[skip%directAlign:][:zeroBlock]
}

// punchHole zeros [off, off+n) of f and gives the whole blocks in it back
// to the file system (fallocate(2) FALLOC_FL_PUNCH_HOLE, keeping the
// size); where the file system cannot punch holes, it writes zeros.
func punchHole(f *os.File, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		switch err {
		case unix.EINTR:
			continue
		case unix.EOPNOTSUPP, unix.ENOSYS:
			return zeroFillBuffered(f, off, off+n)
		}
		return err
	}
}
