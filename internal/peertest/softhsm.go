package peertest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SoftHSMModule is the PKCS #11 library Debian's softhsm2 installs.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSM is a fresh SoftHSM2 token for one test: a real PKCS #11 token,
// the one an HSM would be, kept in the test's temporary directory.
type SoftHSM struct {
	Token   string // its label
	PINFile string // the user PIN, mode 0600
	Conf    string // SOFTHSM2_CONF, set in the test's environment
}

// NewSoftHSM initialises a token labelled "radgate" with softhsm2-util
// under t.TempDir() and points SOFTHSM2_CONF at it (so t must not be
// parallel). It skips without softhsm2 (fails under RADGATE_REQUIRE_PEERS).
func NewSoftHSM(t testing.TB) *SoftHSM {
	t.Helper()
	Require(t, "softhsm2-util", "softhsm2")
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &SoftHSM{Token: "radgate", PINFile: filepath.Join(dir, "pin"), Conf: filepath.Join(dir, "softhsm2.conf")}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.PINFile, []byte("2718-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", h.Conf)
	tool := RequireTool(t, "softhsm2-util")
	Run(t, nil, tool, "--init-token", "--free", "--label", h.Token, "--pin", "2718-test", "--so-pin", "3141-test-so")
	return h
}

// URI is the blob_kms setting for the KEK labelled object on the token.
func (h *SoftHSM) URI(object string) string {
	return "pkcs11:token=" + h.Token + ";object=" + object + "?module-path=" + SoftHSMModule + "&pin-source=" + h.PINFile
}
