package interop

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
)

// Crash test sizes: issue 2 says a 500-instance send, killed partway.
const (
	crashInstances = 500
	crashAfterAcks = 150
)

// TestKill9During500InstanceSend — acceptance (issue 2): "`kill -9` during
// a 500-instance send, then restart: every instance acknowledged before the
// kill is present and intact; no partial file anywhere".
//
// storescu -v sends 500 CT instances (~530 KB each) on one association and
// prints "Received Store Response (Success)" for each acknowledged one;
// after the 150th, radgate gets SIGKILL. Before the restart every
// acknowledged instance must be a whole record in radgate's log (torn
// records are never returned: their CRC fails); after it, every committed
// record must be indexed, and every acknowledged SOP Instance UID must have
// a record whose data set is byte-identical to the file sent.
func TestKill9During500InstanceSend(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the 500 × 530 KB crash test")
	}
	t.Parallel()
	peertest.Require(t, "storescu", "dcmdump")
	ctx := context.Background()
	tmpl, src, err := peertest.TemplateCT(ctx, peertest.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CT template: %s", src)
	inst, err := peertest.WriteSeries(peertest.SeriesSpec{Template: tmpl, Dir: filepath.Join(t.TempDir(), "series"), N: crashInstances, Seed: "kill9-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]peertest.Instance{}
	args := []string{"-v", "-aet", "STORESCU", "-aec", "RADGATE", "127.0.0.1", ""}
	for _, in := range inst {
		byPath[in.Path] = in
		args = append(args, in.Path)
	}

	r := startRadgate(t, nil)
	args[6] = strconv.Itoa(r.Config.DIMSEPort)
	bin, err := peertest.Tool("storescu")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = peertest.PeerEnv("")
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var acked []peertest.Instance
	var current string
	killed := false
	start := time.Now()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "I: Sending file: "):
			current = strings.TrimPrefix(line, "I: Sending file: ")
		case strings.Contains(line, "Received Store Response (Success)"):
			in, ok := byPath[current]
			if !ok {
				t.Fatalf("storescu acknowledged %q, which is not a file we sent", current)
			}
			acked = append(acked, in)
			if len(acked) == crashAfterAcks && !killed {
				r.Kill()
				killed = true
				t.Logf("SIGKILL after %d acknowledged instances, %s into the send", len(acked), time.Since(start).Round(time.Millisecond))
			}
		case strings.Contains(line, "Received Store Response"):
			t.Errorf("storescu: %s (file %s)", line, current)
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the send ended (%v) with %d acknowledged before radgate could be killed", err, len(acked))
	}
	if err == nil {
		t.Errorf("storescu exited 0 although radgate was killed")
	}
	if len(acked) != crashAfterAcks {
		t.Errorf("%d acknowledged after the kill was sent (a late response?); checking all of them", len(acked))
	}

	// Before any recovery: every acknowledged instance is a whole record
	// in the log (the index may lag behind it by the last few).
	before := storedByUID(t, r.DataDir())
	indexedBefore := indexedUIDs(t, r.DataDir())
	for _, in := range acked {
		if _, ok := before[in.SOPInstanceUID]; !ok {
			t.Errorf("acknowledged %s (%s) is not in the log after the kill", in.SOPInstanceUID, filepath.Base(in.Path))
		}
	}

	r2 := peertest.RestartRadgate(t, r)
	stored := storedByUID(t, r2.DataDir())
	if len(stored) < len(before) {
		t.Errorf("restart lost records: %d before, %d after", len(before), len(stored))
	}
	indexed := indexedUIDs(t, r2.DataDir())
	for _, in := range acked {
		if !indexed[in.SOPInstanceUID] {
			t.Errorf("acknowledged %s (%s) is not in the index after restart", in.SOPInstanceUID, filepath.Base(in.Path))
		}
		blob, ok := stored[in.SOPInstanceUID]
		if !ok {
			t.Errorf("acknowledged %s (%s) has no record after restart", in.SOPInstanceUID, filepath.Base(in.Path))
			continue
		}
		p, err := peertest.ProbeFile(ctx, blob)
		if err != nil || p.PixelDataLength != 512*512*2 {
			t.Errorf("record of %s: pixel data %d bytes, want %d (%v)", filepath.Base(in.Path), p.PixelDataLength, 512*512*2, err)
		}
		if err := sameDataset(in.Path, blob); err != nil {
			t.Errorf("record of %s: data set differs from the file sent: %v", filepath.Base(in.Path), err)
		}
	}
	// Replay indexes every committed record, acknowledged or not (one
	// committed as the kill came is stored without its sender knowing).
	for uid := range stored {
		if !indexed[uid] {
			t.Errorf("committed record of %s not indexed after restart", uid)
		}
	}
	for uid := range indexed {
		if _, ok := stored[uid]; !ok {
			t.Errorf("index entry %s has no record", uid)
		}
	}
	t.Logf("acknowledged %d; at the kill %d indexed; after restart %d committed, all indexed", len(acked), len(indexedBefore), len(stored))
	mustEcho(t, r2)
}
