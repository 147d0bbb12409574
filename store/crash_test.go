package store

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashChildEnv names the data directory a re-executed test binary ingests
// into until it is killed.
const crashChildEnv = "RADGATE_STORE_CRASH_CHILD_DIR"

// TestCrashChild is the child side of TestCrashSafety; it does nothing in
// a normal run. It ingests instances in a loop (new ones, and replacements
// of earlier ones) into small segments, and prints "ack <uid> <sha256>"
// (of the Part 10 file it expects stored) after every Ingest that returned
// success, i.e. every instance a sender would have been told is stored.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child of TestCrashSafety only")
	}
	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: dir, Duplicates: Replace, SegmentSize: testSegmentSize}, nil, nil)
	if err != nil {
		fmt.Fprintf(os.Stdout, "error %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stdout, "ready\n")
	round := os.Getpid()
	var sent []string
	for i := 0; ; i++ {
		d := ds{sop: fmt.Sprintf("1.2.826.0.1.3680043.10.999.9.%d.%d", round, i),
			pixels: 2 * (1 + rand.IntN(300<<10)), fill: byte(i)}
		if i%5 == 4 {
			d.sop = sent[rand.IntN(len(sent))] // replace an earlier one
			d.fill = byte(rand.IntN(256))
		}
		if _, err := s.Ingest(ctx, d.incoming(), bytes.NewReader(d.bytes())); err != nil {
			fmt.Fprintf(os.Stdout, "error %v\n", err)
			os.Exit(2)
		}
		sent = append(sent, d.sop)
		fmt.Fprintf(os.Stdout, "ack %s %s\n", d.sop, sha256Hex(part10(t, d.incoming(), d.bytes())))
	}
}

// TestCrashSafety kills a process ingesting into a store with SIGKILL at
// random moments, then opens the store and checks the promises of doc.go:
// every acknowledged instance is there with a blob that hashes right (and
// the latest acknowledged content of a replaced instance, or newer), every
// committed record in the log is whole, and every index row points at
// one. Each round reopens the directory the previous round left behind.
func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	acked := map[string][]string{} // uid → acknowledged sha256s, in order
	for round := range rounds {
		lines := crashRound(t, dir, round)
		for _, l := range lines {
			f := strings.Fields(l)
			acked[f[1]] = append(acked[f[1]], f[2])
		}
		t.Logf("round %d: %d acknowledged", round, len(lines))
		verifyAfterCrash(t, dir, acked)
		if t.Failed() {
			return
		}
	}
}

// crashRound runs one child and kills it at a random moment after it
// has started ingesting. It returns the child's "ack" lines.
func crashRound(t *testing.T, dir string, round int) (acks []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Kill after a random number of acknowledgements plus a random delay,
	// so the kill lands anywhere in an Ingest.
	killAfter := 5 + rand.IntN(40)
	var timer <-chan time.Time
	deadline := time.After(60 * time.Second)
	killed := false
	for !killed {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("round %d: child exited before it was killed: %v\n%s", round, cmd.Wait(), stderr.String())
			}
			switch {
			case strings.HasPrefix(l, "ack "):
				acks = append(acks, l)
				if len(acks) == killAfter {
					timer = time.After(time.Duration(rand.IntN(3000)) * time.Microsecond)
				}
			case strings.HasPrefix(l, "error "):
				t.Fatalf("round %d: child: %s", round, l)
			}
		case <-timer:
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("round %d: child made no progress", round)
		}
	}
	// Acknowledgements written before the kill are still in the pipe.
	for l := range lines {
		if strings.HasPrefix(l, "ack ") {
			acks = append(acks, l)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("round %d: child did not die of SIGKILL: %v", round, err)
	}
	return acks
}

func verifyAfterCrash(t *testing.T, dir string, acked map[string][]string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Config{DataDir: dir, SegmentSize: testSegmentSize}, nil, nil)
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	defer s.Close()
	if _, err := s.CountInstances(ctx); err != nil {
		t.Fatal(err)
	}
	onDisk := committed(t, dir)
	for uid, sums := range acked {
		inst, err := s.Instance(ctx, uid)
		if err != nil {
			t.Errorf("acknowledged instance %s lost: %v", uid, err)
			continue
		}
		last := sums[len(sums)-1]
		if inst.SHA256 != last {
			// Only a replacement that was in flight when the child died
			// (committed, not yet acknowledged) may be newer.
			for _, old := range sums[:len(sums)-1] {
				if inst.SHA256 == old && old != last {
					t.Errorf("instance %s reverted to superseded content %s", uid, old)
				}
			}
		}
		if !onDisk[inst.BlobKey] {
			t.Errorf("instance %s: blob %s missing", uid, inst.BlobKey)
			continue
		}
		if b := readBlob(t, s, inst.BlobKey); sha256Hex(b) != inst.SHA256 {
			t.Errorf("instance %s: blob does not hash to the indexed SHA-256", uid)
		}
	}
	// Every row, acknowledged or not, has its blob.
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, indexName)}).EscapedPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT blob_key FROM instance")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var k string
		rows.Scan(&k)
		if !onDisk[k] {
			t.Errorf("index row points at missing blob %s", k)
		}
		n++
	}
	if len(onDisk) < n {
		t.Errorf("%d rows but only %d records", n, len(onDisk))
	}
}
