package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
)

// radgateSend runs `radgate send TARGET PATH...` and returns its combined
// output (progress and the summary line are on stderr).
func radgateSend(t *testing.T, target string, paths ...string) (string, error) {
	t.Helper()
	bin := radgateBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"send", target}, paths...)...)
	cmd.Env = peertest.CleanEnv() // no stray RADGATE_* settings
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sendTree lays samples out as dir/a/... and dir/a/b/... so send must
// recurse, and returns dir.
func sendTree(t *testing.T, samples []sample) string {
	t.Helper()
	dir := t.TempDir()
	for i, s := range samples {
		sub := filepath.Join(dir, "a")
		if i%2 == 1 {
			sub = filepath.Join(dir, "a", "b")
		}
		if err := copyFile(s.path, filepath.Join(sub, filepath.Base(s.path))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRadgateSend — acceptance (issue 2): "`radgate send` delivers to
// storescp and to Orthanc", with "an exit status that scripts can trust".
func TestRadgateSend(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "storescp", "dcmdump")
	samples := prepareSamples(t, t.TempDir())
	tree := sendTree(t, samples)
	ctx := context.Background()

	// Every pydicom sample, every family, one association: the files arrive
	// and each data set is what was sent (normalised dcmdump, same transfer
	// syntax).
	t.Run("to-storescp", func(t *testing.T) {
		peers, err := peertest.PeersDir()
		if err != nil {
			t.Fatal(err)
		}
		scp := peertest.StartStorescpWith(t, peertest.StorescpConfig{
			Dir: filepath.Join(t.TempDir(), "storescp"), AE: "STORESCP", BitPreserving: true, Verbose: true,
			ConfigFile: filepath.Join(peers, "storescu-interop.cfg"), Profile: "InteropSCP",
		})
		start := time.Now()
		out, err := radgateSend(t, scp.Target(), tree)
		t.Logf("radgate send %d files in %s; output tail:\n%s", len(samples), time.Since(start).Round(time.Millisecond), lastN(out, 3))
		if err != nil {
			t.Errorf("radgate send → storescp: %v\n%s", err, lastN(out, 30))
		}
		// One association for all files (storescp also logs our readiness
		// probe as one); after a failure send may reconnect.
		if n := strings.Count(scp.Log(), "Association Received"); n != 2 && err == nil {
			t.Errorf("storescp saw %d associations (one is the readiness probe); send must use one", n)
		}
		received := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(scp.Dir, "*.dcm"))
		for _, f := range files {
			d, err := peertest.DumpDataset(ctx, f)
			if err != nil {
				t.Errorf("storescp file %s: %v", f, err)
				continue
			}
			received[d.SOPInstanceUID] = f
		}
		identical := 0
		for _, s := range samples {
			f, ok := received[s.dump.SOPInstanceUID]
			if !ok {
				t.Errorf("%s (%s, %s): not delivered", s.name, s.dump.SOPClass, s.dump.TransferSyntax)
				continue
			}
			got, _ := peertest.DumpDataset(ctx, f)
			if got.TransferSyntax != s.dump.TransferSyntax {
				t.Errorf("%s: delivered in %s, file is %s", s.name, got.TransferSyntax, s.dump.TransferSyntax)
			}
			if d := peertest.DiffLines(s.dump.Text, got.Text, 5); d != "" {
				t.Errorf("%s: delivered data set differs (dcmdump, normalised):\n%s", s.name, d)
			}
			if sameDataset(s.path, f) == nil {
				identical++
			}
		}
		t.Logf("%d of %d data sets delivered byte for byte as in the file", identical, len(samples))
	})

	t.Run("to-orthanc", func(t *testing.T) {
		peertest.Require(t, "Orthanc", "orthanc-dicomweb")
		o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{})
		out, err := radgateSend(t, o.Target(), tree)
		if err != nil {
			t.Errorf("radgate send → Orthanc: %v\n%s", err, lastN(out, 30))
		}
		have, err := o.SOPInstanceUIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			if _, ok := have[s.dump.SOPInstanceUID]; !ok {
				t.Errorf("%s (%s, %s): not in Orthanc's /instances", s.name, s.dump.SOPClass, s.dump.TransferSyntax)
			}
		}
		t.Logf("Orthanc holds %d instances for %d files sent", len(have), len(samples))
	})

	// Exit status scripts can trust: non-zero when nothing listens, and when
	// the peer rejects the association.
	t.Run("exit-status-on-failure", func(t *testing.T) {
		port := peertest.MustFreePort(t)
		if out, err := radgateSend(t, fmt.Sprintf("NOBODY@127.0.0.1:%d", port), samples[0].path); err == nil {
			t.Errorf("radgate send to a closed port exited 0:\n%s", out)
		}
		r := startRadgate(t, nil)
		if out, err := radgateSend(t, "WRONG@"+r.Addr(), samples[0].path); err == nil {
			t.Errorf("radgate send rejected by the called AE exited 0:\n%s", out)
		}
		missing := filepath.Join(t.TempDir(), "does-not-exist.dcm")
		if out, err := radgateSend(t, r.Target(), samples[0].path, missing); err == nil {
			t.Errorf("radgate send with a missing file exited 0:\n%s", out)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatal("the missing file exists")
		}
	})
}
