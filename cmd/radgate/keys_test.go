package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
)

func TestKeysCmd(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "blob.keys")
	loose := filepath.Join(t.TempDir(), "loose.keys")
	runKeys := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, append([]string{"keys"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"help", []string{"-h"}, 0, "", "usage: radgate keys init|rotate"},
		{"no subcommand", []string{"--file", path}, 2, "", "usage: radgate keys"},
		{"no file", []string{"init"}, 2, "", "usage: radgate keys"},
		{"rotate before init", []string{"rotate", "--file", path}, 1, "", "no such file"},
		{"init", []string{"init", "--file", path}, 0, "created " + path + " with key ", ""},
		{"init again", []string{"init", "--file", path}, 1, "", "exists; not replacing it"},
	} {
		code, out, errOut := runKeys(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("%s: radgate keys %v: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", tc.name, tc.args, code, out, errOut, tc.code, tc.out, tc.err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	first, err := store.OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runKeys("rotate", "--file", path)
	if code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	kf, err := store.OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if id == first.Current() || kf.Current() != id {
		t.Errorf("rotate printed %q; the file's current key is %q, the first %q", id, kf.Current(), first.Current())
	}
	// The first key is still there: what it wraps still unwraps.
	dek := bytes.Repeat([]byte{1}, 32)
	wrapped, err := first.Wrap(ctx, first.Current(), dek)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kf.Unwrap(ctx, first.Current(), wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Errorf("the first key is gone after rotate: %v", err)
	}
	// A key file others may read is refused.
	if code, _, _ := runKeys("init", "--file", loose); code != 0 {
		t.Fatal("init failed")
	}
	os.Chmod(loose, 0o644)
	if code, _, errOut := runKeys("rotate", "--file", loose); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("rotate of a 0644 key file: exit %d, %q", code, errOut)
	}
}

// TestKeysCmdPKCS11: keys init --pkcs11 makes the key on a real token
// (SoftHSM2), once per label.
func TestKeysCmdPKCS11(t *testing.T) {
	h := peertest.NewSoftHSM(t)
	uri := h.URI("kek-1")
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"init", []string{"keys", "init", "--pkcs11", uri}, 0, "created key kek-1 on token radgate", ""},
		{"init again", []string{"keys", "init", "--pkcs11", uri}, 1, "", "already holds a key labelled"},
		{"rotate", []string{"keys", "rotate", "--pkcs11", uri}, 2, "", "usage: radgate keys"},
		{"both", []string{"keys", "init", "--pkcs11", uri, "--file", filepath.Join(t.TempDir(), "k")}, 2, "", "usage: radgate keys"},
		{"bad URI", []string{"keys", "init", "--pkcs11", "pkcs11:token=radgate"}, 1, "", "object missing"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.err) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", tc.name, code, &out, &errOut, tc.code, tc.out, tc.err)
		}
	}
}
