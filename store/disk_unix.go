//go:build linux || darwin

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// freeBytes is the space an unprivileged writer may still use on the file
// system holding path (statfs(2) f_bavail: blocks reserved for root do not
// count, since radgate should not run as root).
func freeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("store: statfs: %w", err)
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize)), nil
}

// lockDataDir takes an exclusive flock(2) on dataDir/lock, held until the
// returned file is closed (or the process dies: the kernel drops it, so a
// SIGKILL never leaves a stale lock). Two radgates on one data directory
// would empty each other's tmp/ and fight over the index.
func lockDataDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, path)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return f, nil
}

// isNoSpace reports a full disk (or quota) met while writing.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
