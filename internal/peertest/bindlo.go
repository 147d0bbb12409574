package peertest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildBindlo compiles test/peers/bindlo.c into dir (the LD_PRELOAD shim that
// turns an INADDR_ANY bind into 127.0.0.1) and returns the .so path. The
// name carries the source's hash, so a cached build is reused until the
// source changes; the file appears by rename, so concurrent callers (test
// binaries of several packages) never load a half-written one.
func BuildBindlo(dir string) (string, error) {
	peers, err := PeersDir()
	if err != nil {
		return "", err
	}
	src := filepath.Join(peers, "bindlo.c")
	code, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("peertest: bindlo source: %w", err)
	}
	sum := sha256.Sum256(code)
	out := filepath.Join(dir, "bindlo-"+hex.EncodeToString(sum[:6])+".so")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cc, err := Tool("cc")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".bindlo-*.so")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-o", tmp.Name(), src, "-ldl")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("peertest: cc bindlo.c: %v\n%s", err, b)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// CacheDir is where built helpers are kept between runs: the user cache
// directory, or the temp directory when there is none.
func CacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "radgate-peertest")
}

// Bindlo returns the cached shim for a test, failing it when cc is missing
// (cc comes with Go's usual toolchain setup; without it peers could not be
// kept on loopback).
func Bindlo(t testing.TB) string {
	t.Helper()
	Require(t, "cc")
	p, err := BuildBindlo(CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
