package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
)

// TestStorescuEveryTransferSyntax — acceptance (issue 2): "`storescu -xf
// storescu-all.cfg Gateway` stores every pydicom test image and SR in every
// transfer-syntax family, and each stored instance has the same dataset
// content as what was sent (compare dcmdump output)".
//
// Two runs, each on a fresh radgate:
//   - storescu-all.cfg / Gateway, as the acceptance says: the uncompressed
//     syntaxes share one presentation context, so radgate picks one and
//     storescu converts big-endian and implicit files to it; compressed
//     files travel as they are.
//   - storescu-interop.cfg / Interop: one context per syntax, so every file
//     (big-endian and implicit included) travels in its own transfer syntax;
//     this run must cover all 13 families.
//
// For each file: the stored blob's normalised dcmdump (peertest.Normalise:
// meta header, group lengths and sequence-length encoding aside) equals the
// original's; its transfer syntax is the one sent; and its data set is
// byte-identical to what a bit-preserving storescp (+B) received from the
// same storescu command. Every blob parses, is named by its SHA-256, is in
// the index, and tmp/ is empty.
func TestStorescuEveryTransferSyntax(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "storescu", "storescp", "dcmdump")
	samples := prepareSamples(t, t.TempDir())
	peers, err := peertest.PeersDir()
	if err != nil {
		t.Fatal(err)
	}
	allCfg := filepath.Join(peers, "storescu-all.cfg")
	cfgText, err := os.ReadFile(allCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("storescu-all.cfg/Gateway", func(t *testing.T) {
		var send []sample
		for _, s := range samples {
			// Only SOP classes the profile proposes; the rest go in the
			// Interop run.
			if bytes.Contains(cfgText, []byte("= "+s.dump.SOPClass+`\`)) {
				send = append(send, s)
			} else {
				t.Logf("%s: %s is not in storescu-all.cfg; sent in the Interop run only", s.name, s.dump.SOPClass)
			}
		}
		storeAndCompare(t, send, allCfg, "Gateway", false)
	})
	t.Run("storescu-interop.cfg/Interop", func(t *testing.T) {
		got := storeAndCompare(t, samples, filepath.Join(peers, "storescu-interop.cfg"), "Interop", true)
		var missing []string
		for name, fam := range tsFamily {
			if !got[name] {
				missing = append(missing, fam)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			t.Errorf("transfer-syntax families never stored: %s", strings.Join(missing, ", "))
		}
	})
}

var successRE = regexp.MustCompile(`Received Store Response \(Success\)`)

// storeAndCompare sends samples with `storescu -xf cfg profile` to a fresh
// radgate and to a bit-preserving storescp, compares, and returns the
// transfer syntaxes radgate stored.
func storeAndCompare(t *testing.T, samples []sample, cfg, profile string, exactTS bool) map[string]bool {
	ctx := context.Background()
	r := startRadgate(t, nil)
	peers, err := peertest.PeersDir()
	if err != nil {
		t.Fatal(err)
	}
	scp := peertest.StartStorescpWith(t, peertest.StorescpConfig{
		Dir: filepath.Join(t.TempDir(), "storescp"), AE: "STORESCP", BitPreserving: true, Verbose: true,
		ConfigFile: filepath.Join(peers, "storescu-interop.cfg"), Profile: "InteropSCP",
	})
	storescu, err := peertest.Tool("storescu")
	if err != nil {
		t.Fatal(err)
	}
	send := func(ae string, port int) (string, error) {
		args := []string{"-v", "-aet", "STORESCU", "-aec", ae, "-xf", cfg, profile, "127.0.0.1", strconv.Itoa(port)}
		cctx, cancel := context.WithTimeout(ctx, toolTimeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, storescu, append(args, paths(samples)...)...)
		cmd.Env = peertest.PeerEnv("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var wg sync.WaitGroup
	var refOut string
	var refErr error
	wg.Add(1)
	go func() { defer wg.Done(); refOut, refErr = send(scp.AE, scp.Port) }()
	start := time.Now()
	out, err := send(r.Config.AE, r.Config.DIMSEPort)
	t.Logf("storescu -xf %s %s: %d files to radgate in %s", filepath.Base(cfg), profile, len(samples), time.Since(start).Round(time.Millisecond))
	wg.Wait()
	if err != nil {
		t.Errorf("storescu → radgate: %v\n%s", err, lastN(out, 40))
	}
	if n := len(successRE.FindAllString(out, -1)); n != len(samples) {
		t.Errorf("storescu → radgate: %d successful C-STORE responses for %d files\n%s", n, len(samples), lastN(out, 40))
	}
	if refErr != nil {
		t.Errorf("storescu → storescp (reference): %v\n%s", refErr, lastN(refOut, 20))
	}

	stored := storedByUID(t, r.DataDir())
	if len(stored) != len(samples) {
		t.Errorf("radgate holds %d instances for %d files sent", len(stored), len(samples))
	}
	reference := map[string]string{}
	refFiles, _ := filepath.Glob(filepath.Join(scp.Dir, "*.dcm"))
	for _, f := range refFiles {
		if p, err := peertest.ProbeFile(ctx, f); err == nil {
			reference[p.SOPInstanceUID] = f
		}
	}
	indexed := indexedUIDs(t, r.DataDir())
	gotTS := map[string]bool{}
	for _, s := range samples {
		blob, ok := stored[s.dump.SOPInstanceUID]
		if !ok {
			t.Errorf("%s (%s, %s): not stored", s.name, s.dump.SOPClass, s.dump.TransferSyntax)
			continue
		}
		if !indexed[s.dump.SOPInstanceUID] {
			t.Errorf("%s: stored but not in the index", s.name)
		}
		got, err := peertest.DumpDataset(ctx, blob)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		gotTS[got.TransferSyntax] = true
		switch {
		case got.TransferSyntax == s.dump.TransferSyntax:
		case !exactTS && uncompressed[s.dump.TransferSyntax] && uncompressed[got.TransferSyntax]:
			t.Logf("%s: sent as %s (storescu converted %s for the shared uncompressed context)", s.name, got.TransferSyntax, s.dump.TransferSyntax)
		default:
			t.Errorf("%s: stored in %s, sent in %s", s.name, got.TransferSyntax, s.dump.TransferSyntax)
		}
		if d := peertest.DiffLines(s.dump.Text, got.Text, 5); d != "" {
			t.Errorf("%s (%s): stored data set differs from the original (dcmdump, normalised):\n%s", s.name, s.dump.TransferSyntax, d)
		}
		ref, ok := reference[s.dump.SOPInstanceUID]
		if !ok {
			t.Errorf("%s: the reference storescp did not receive it", s.name)
			continue
		}
		if rd, err := peertest.DumpDataset(ctx, ref); err != nil || rd.TransferSyntax != got.TransferSyntax {
			// storescp chose another of the shared uncompressed syntaxes,
			// so storescu sent it different bytes.
			t.Logf("%s: storescp received %s, radgate %s; bytes not compared", s.name, rd.TransferSyntax, got.TransferSyntax)
			continue
		}
		if err := sameDataset(blob, ref); err != nil {
			t.Errorf("%s (%s): radgate's data set is not byte-identical to what storescp +B received: %v", s.name, s.dump.TransferSyntax, err)
		}
	}
	return gotTS
}

// sameDataset compares the data set bytes (after the File Meta) of two Part
// 10 files.
func sameDataset(a, b string) error {
	da, err := peertest.DatasetBytes(a)
	if err != nil {
		return err
	}
	db, err := peertest.DatasetBytes(b)
	if err != nil {
		return err
	}
	if bytes.Equal(da, db) {
		return nil
	}
	i := 0
	for i < len(da) && i < len(db) && da[i] == db[i] {
		i++
	}
	return fmt.Errorf("%d vs %d bytes, first difference at data set offset %d", len(da), len(db), i)
}

func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
