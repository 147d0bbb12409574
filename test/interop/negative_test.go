package interop

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
)

// Acceptance (issue 2): "Wrong called AE, a calling AE not on the allow-list
// (when enabled), garbage bytes, a PDU that declares 4 GB, an abort in the
// middle of a dataset, a peer that stalls: each gets the standard rejection
// or abort and a log line, and radgate keeps serving (an echoscu right after
// succeeds)."

var verificationOnly = []presCtx{{id: 1, abstract: uidVerification, ts: []string{uidImplicitLE}}}

// TestEchoscu — acceptance: "DCMTK echoscu succeeds".
func TestEchoscu(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, nil)
	out, err := dcmtk(t, "echoscu", "-v", "-aet", "ECHOSCU", "-aec", r.Config.AE, "127.0.0.1", itoa(r.Config.DIMSEPort))
	if err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Received Echo Response (Success)") {
		t.Errorf("echoscu output lacks a successful echo response:\n%s", out)
	}
	// The hand-built association and C-ECHO agree.
	c, ac, rj, err := rawAssociate(r.Addr(), "", r.Config.AE, "RAWSCU", verificationOnly)
	if err != nil || rj != nil {
		t.Fatalf("raw association: %v %v", err, rj)
	}
	defer c.Close()
	if pc := ac.contexts[1]; pc.result != 0 || pc.ts != uidImplicitLE {
		t.Fatalf("Verification context: result %d ts %q", pc.result, pc.ts)
	}
	if _, err := c.Write(pData(1, true, true, cEchoRQ(7))); err != nil {
		t.Fatal(err)
	}
	typ, body, err := readPDU(c, replyReadTimeout)
	if err != nil || typ != pduPData {
		t.Fatalf("C-ECHO-RSP: type 0x%02x, %v", typ, err)
	}
	// PDV: length(4) pcid mch, then the command set; status (0000,0900) = 0.
	if !bytes.Contains(body, []byte{0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00}) {
		t.Errorf("C-ECHO-RSP has no Status 0x0000: % x", body)
	}
	if _, err := c.Write(releaseRQ()); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := readPDU(c, replyReadTimeout); err != nil || typ != pduReleaseRP {
		t.Errorf("A-RELEASE-RP: type 0x%02x, %v", typ, err)
	}
}

// TestRejectWrongCalledAE — acceptance: "Wrong called AE … gets the
// standard rejection … and a log line, and radgate keeps serving".
// PS3.8 Table 9-21: rejected-permanent (1), service-user (1),
// called-AE-title-not-recognized (7).
func TestRejectWrongCalledAE(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, nil)
	off := r.LogSize()
	out, err := echo(t, r, "ECHOSCU", "WRONG")
	if err == nil {
		t.Fatalf("echoscu -aec WRONG succeeded:\n%s", out)
	}
	if !strings.Contains(out, "Association Rejected") {
		t.Errorf("echoscu -aec WRONG failed without an association rejection:\n%s", out)
	}
	_, _, rj, err := rawAssociate(r.Addr(), "", "WRONG", "RAWSCU", verificationOnly)
	if err != nil || rj == nil {
		t.Fatalf("raw A-ASSOCIATE-RQ to WRONG: want A-ASSOCIATE-RJ, got err=%v", err)
	}
	if *rj != (associateRJ{1, 1, 7}) {
		t.Errorf("A-ASSOCIATE-RJ %v, want result=1 (permanent) source=1 (service-user) reason=7 (called AE not recognized)", rj)
	}
	if line, err := logLine(r, off, 5*time.Second, "reject"); err != nil {
		t.Errorf("radgate logged no rejection: %v", err)
	} else {
		t.Logf("log: %s", line)
	}
	mustEcho(t, r)
}

// TestRejectCallingAENotAllowed — acceptance: "a calling AE not on the
// allow-list (when enabled) gets the standard rejection". PS3.8 Table 9-21:
// rejected-permanent (1), service-user (1), calling-AE-title-not-recognized (3).
func TestRejectCallingAENotAllowed(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, map[string]string{"RADGATE_DIMSE_ALLOWED_CALLING": "GOODSCU"})
	off := r.LogSize()
	if out, err := echo(t, r, "BAD", r.Config.AE); err == nil {
		t.Fatalf("echoscu -aet BAD succeeded with RADGATE_DIMSE_ALLOWED_CALLING=GOODSCU:\n%s", out)
	}
	_, _, rj, err := rawAssociate(r.Addr(), "", r.Config.AE, "BAD", verificationOnly)
	if err != nil || rj == nil {
		t.Fatalf("raw A-ASSOCIATE-RQ from BAD: want A-ASSOCIATE-RJ, got err=%v", err)
	}
	if *rj != (associateRJ{1, 1, 3}) {
		t.Errorf("A-ASSOCIATE-RJ %v, want result=1 source=1 reason=3 (calling AE not recognized)", rj)
	}
	if _, err := logLine(r, off, 5*time.Second, "reject"); err != nil {
		t.Errorf("radgate logged no rejection: %v", err)
	}
	if out, err := echo(t, r, "GOODSCU", r.Config.AE); err != nil {
		t.Fatalf("echoscu -aet GOODSCU (allowed) failed: %v\n%s", err, out)
	}
}

// TestRejectPeerAddressNotAllowed — issue 2 policy: "accept or reject by …
// peer address". Only 127.0.0.2 is allowed; 127.0.0.1 is rejected.
func TestRejectPeerAddressNotAllowed(t *testing.T) {
	t.Parallel()
	r := startRadgate(t, map[string]string{"RADGATE_DIMSE_ALLOWED_PEERS": "127.0.0.2/32"})
	off := r.LogSize()
	c, _, rj, err := rawAssociate(r.Addr(), "127.0.0.1", r.Config.AE, "RAWSCU", verificationOnly)
	switch {
	case rj != nil:
		if rj.result != 1 && rj.result != 2 {
			t.Errorf("A-ASSOCIATE-RJ %v: result is not rejected-permanent/transient", rj)
		}
		t.Logf("127.0.0.1 rejected: %v", rj)
	case err != nil:
		t.Logf("127.0.0.1: connection closed without A-ASSOCIATE-RJ: %v", err)
	default:
		_ = c.Close()
		t.Fatal("association from 127.0.0.1 accepted although only 127.0.0.2/32 is allowed")
	}
	if _, err := logLine(r, off, 5*time.Second, "127.0.0.1"); err != nil {
		t.Errorf("radgate logged nothing about the refused peer: %v", err)
	}
	c, _, rj, err = rawAssociate(r.Addr(), "127.0.0.2", r.Config.AE, "RAWSCU", verificationOnly)
	if err != nil || rj != nil {
		t.Fatalf("association from allowed 127.0.0.2: err=%v rj=%v", err, rj)
	}
	_ = c.Close()
}

// TestGarbageBytes — acceptance: "garbage bytes … get the standard abort and
// a log line, and radgate keeps serving". PS3.8 9.3.1 / Table 9-10: an
// unrecognised or invalid PDU makes the provider issue A-ABORT (AA-1) or
// close the transport.
func TestGarbageBytes(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, nil)
	rng := rand.New(rand.NewPCG(2, 7))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	random[0] = 0xAB // no such PDU type
	cases := []struct {
		name   string
		data   []byte
		onePDU bool // the bytes are exactly one PDU, by its header's length
	}{
		{"http-request", []byte("GET / HTTP/1.1\r\nHost: radgate\r\n\r\n"), false},
		{"random-4KiB", random, false},
		{"unknown-pdu-type-0x08", pdu(0x08, []byte{0, 0, 0, 0}), true},
		{"p-data-before-association", pData(1, true, true, cEchoRQ(1)), true},
		{"associate-rq-item-overruns-pdu", overrunningRQ(), true},
	}
	for _, tc := range cases {
		off := r.LogSize()
		c, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(tc.data); err != nil {
			t.Logf("%s: write: %v", tc.name, err)
		}
		// Well inside the default 30 s ARTIM: the answer must come from the
		// bad PDU, not from a timer.
		how, err := readUntilClosed(c, 5*time.Second, tc.onePDU)
		_ = c.Close()
		if err != nil {
			t.Errorf("%s: want A-ABORT or close: %v", tc.name, err)
		} else {
			t.Logf("%s: %s", tc.name, how)
		}
		if line, err := logLine(r, off, 5*time.Second, "dimse"); err != nil {
			t.Errorf("%s: no radgate log line: %v", tc.name, err)
		} else {
			t.Logf("%s: log: %s", tc.name, line)
		}
	}
	mustEcho(t, r)
}

// overrunningRQ is a well-formed A-ASSOCIATE-RQ whose Application Context
// item then claims 0xFFFF bytes, past the end of the PDU: an invalid PDU
// parameter (PS3.8 9.3.2, Table 9-10 AA-1/AA-8).
func overrunningRQ() []byte {
	b := associateRQ("RADGATE", "RAWSCU", verificationOnly)
	// 6-byte PDU header + 68 fixed bytes, then the item: type, reserved, length.
	b[6+68+2], b[6+68+3] = 0xFF, 0xFF
	return b
}

// TestPDUDeclaring4GB — acceptance: "a PDU that declares 4 GB gets the
// standard abort and a log line, and radgate keeps serving". The declared
// length is checked before anything is allocated: radgate's peak RSS
// (VmHWM) must not grow by the length, nor by the 64 MiB we stream after
// the header.
func TestPDUDeclaring4GB(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, nil)
	mustEcho(t, r)
	before, err := r.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	const streamed = 64 << 20
	send := func(t *testing.T, c net.Conn, header []byte) string {
		t.Helper()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // keep feeding bytes a naive reader would buffer
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(15 * time.Second))
			if _, err := c.Write(header); err != nil {
				return
			}
			chunk := make([]byte, 64<<10)
			for sent := 0; sent < streamed; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		how, err := readUntilClosed(c, 10*time.Second, false)
		_ = c.Close()
		wg.Wait()
		if err != nil {
			t.Fatalf("want A-ABORT or close after a 4 GB PDU header: %v", err)
		}
		return how
	}
	t.Run("associate-rq", func(t *testing.T) {
		off := r.LogSize()
		c, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		how := send(t, c, []byte{pduAssociateRQ, 0, 0xFF, 0xFF, 0xFF, 0xFF})
		t.Logf("A-ASSOCIATE-RQ declaring 0xFFFFFFFF bytes: %s", how)
		if line, err := logLine(r, off, 5*time.Second, "dimse"); err != nil {
			t.Errorf("no radgate log line: %v", err)
		} else {
			t.Logf("log: %s", line)
		}
	})
	t.Run("p-data-tf-in-association", func(t *testing.T) {
		off := r.LogSize()
		c, _, rj, err := rawAssociate(r.Addr(), "", r.Config.AE, "RAWSCU", verificationOnly)
		if err != nil || rj != nil {
			t.Fatalf("association: %v %v", err, rj)
		}
		how := send(t, c, []byte{pduPData, 0, 0xFF, 0xFF, 0xFF, 0xFF})
		t.Logf("P-DATA-TF declaring 0xFFFFFFFF bytes: %s", how)
		if line, err := logLine(r, off, 5*time.Second, "dimse"); err != nil {
			t.Errorf("no radgate log line: %v", err)
		} else {
			t.Logf("log: %s", line)
		}
	})
	after, err := r.PeakRSS()
	if err != nil {
		t.Fatalf("radgate gone after the 4 GB PDUs: %v", err)
	}
	t.Logf("radgate VmHWM before %d KiB, after %d KiB", before>>10, after>>10)
	if after-before > 32<<20 {
		t.Errorf("radgate's peak RSS grew by %d MiB after 4 GB PDU headers: it allocates what the peer declares", (after-before)>>20)
	}
	mustEcho(t, r)
}

// TestAbortMidDataset — acceptance: "an abort in the middle of a dataset …
// and radgate keeps serving"; and issue 2 store: "no partial file visible".
// A hand-built association sends a C-STORE-RQ and half of CT_small's data
// set, then A-ABORT: nothing may be stored, and tmp/ must be emptied.
func TestAbortMidDataset(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu", "pydicom", "dcmdump")
	r := startRadgate(t, nil)
	src := filepath.Join(peertest.PydicomTestFiles, "CT_small.dcm")
	ds, err := peertest.DatasetBytes(src)
	if err != nil {
		t.Fatal(err)
	}
	d, err := peertest.DumpDataset(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	c, ac, rj, err := rawAssociate(r.Addr(), "", r.Config.AE, "RAWSCU", []presCtx{{id: 1, abstract: uidCTImage, ts: []string{uidExplicitLE}}})
	if err != nil || rj != nil {
		t.Fatalf("association: %v %v", err, rj)
	}
	defer c.Close()
	if ac.contexts[1].result != 0 {
		t.Fatalf("CT Image Storage / explicit VR LE not accepted: %+v", ac.contexts[1])
	}
	off := r.LogSize()
	if _, err := c.Write(pData(1, true, true, cStoreRQ(uidCTImage, d.SOPInstanceUID, 1))); err != nil {
		t.Fatal(err)
	}
	half := ds[:len(ds)/2]
	if max := int(ac.maxLength); max != 0 && len(half)+6 > max {
		half = half[:max-6]
	}
	if _, err := c.Write(pData(1, false, false, half)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(abortPDU()); err != nil {
		t.Fatal(err)
	}
	if how, err := readUntilClosed(c, 5*time.Second, true); err != nil {
		t.Errorf("after our A-ABORT radgate must close: %v", err)
	} else {
		t.Logf("after A-ABORT: %s", how)
	}
	if line, err := logLine(r, off, 5*time.Second, "abort"); err != nil {
		t.Errorf("no radgate log line about the abort: %v", err)
	} else {
		t.Logf("log: %s", line)
	}
	if stored := storedByUID(t, r.DataDir()); len(stored) != 0 {
		t.Errorf("aborted C-STORE left a committed record: %v", stored)
	}
	if uids, err := peertest.IndexedUIDs(r.DataDir()); err == nil && len(uids) != 0 {
		t.Errorf("aborted C-STORE is in the index: %v", uids)
	}
	mustEcho(t, r)
}

// TestStalledPeer — acceptance: "a peer that stalls gets the standard abort
// and a log line, and radgate keeps serving". With RADGATE_DIMSE_ARTIM=1s a
// connection that never sends an A-ASSOCIATE-RQ is closed by the ARTIM timer
// (PS3.8 9.1.5); with RADGATE_DIMSE_IDLE_TIMEOUT=2s an association that goes
// quiet is aborted.
func TestStalledPeer(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, map[string]string{"RADGATE_DIMSE_ARTIM": "1s", "RADGATE_DIMSE_IDLE_TIMEOUT": "2s"})
	check := func(t *testing.T, c net.Conn, min, max time.Duration, off int64) {
		t.Helper()
		start := time.Now()
		how, err := readUntilClosed(c, max+5*time.Second, true)
		_ = c.Close()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("stalled connection: %v", err)
		}
		t.Logf("%s after %s", how, took.Round(time.Millisecond))
		if took < min || took > max {
			t.Errorf("closed after %s, want between %s and %s", took.Round(time.Millisecond), min, max)
		}
		if line, err := logLine(r, off, 5*time.Second, "dimse"); err != nil {
			t.Errorf("no radgate log line: %v", err)
		} else {
			t.Logf("log: %s", line)
		}
	}
	t.Run("silent-connection", func(t *testing.T) {
		off := r.LogSize()
		c, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, 500*time.Millisecond, 4*time.Second, off)
	})
	t.Run("partial-pdu-header", func(t *testing.T) {
		off := r.LogSize()
		c, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte{pduAssociateRQ, 0, 0}); err != nil {
			t.Fatal(err)
		}
		check(t, c, 500*time.Millisecond, 4*time.Second, off)
	})
	t.Run("idle-association", func(t *testing.T) {
		off := r.LogSize()
		c, _, rj, err := rawAssociate(r.Addr(), "", r.Config.AE, "RAWSCU", verificationOnly)
		if err != nil || rj != nil {
			t.Fatalf("association: %v %v", err, rj)
		}
		check(t, c, 1500*time.Millisecond, 6*time.Second, off)
	})
	mustEcho(t, r)
}

// TestMaxAssociations — issue 2 policy: "a maximum of concurrent
// associations (rejected with 'local limit exceeded')". PS3.8 Table 9-21:
// rejected-transient (2), service-provider presentation (3),
// local-limit-exceeded (2).
func TestMaxAssociations(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "echoscu")
	r := startRadgate(t, map[string]string{"RADGATE_DIMSE_MAX_ASSOCIATIONS": "1"})
	held, _, rj, err := rawAssociate(r.Addr(), "", r.Config.AE, "HOLDER", verificationOnly)
	if err != nil || rj != nil {
		t.Fatalf("first association: %v %v", err, rj)
	}
	defer held.Close()
	off := r.LogSize()
	_, _, rj, err = rawAssociate(r.Addr(), "", r.Config.AE, "SECOND", verificationOnly)
	if err != nil || rj == nil {
		t.Fatalf("second association while one is held: want A-ASSOCIATE-RJ, got err=%v", err)
	}
	if *rj != (associateRJ{2, 3, 2}) {
		t.Errorf("A-ASSOCIATE-RJ %v, want result=2 (transient) source=3 (provider, presentation) reason=2 (local-limit-exceeded)", rj)
	}
	out, err := echo(t, r, "ECHOSCU", r.Config.AE)
	if err == nil {
		t.Errorf("echoscu succeeded while the only association slot was held:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "local limit exceeded") {
		t.Errorf("echoscu was not rejected with local-limit-exceeded:\n%s", out)
	}
	if line, err := logLine(r, off, 5*time.Second, "reject"); err != nil {
		t.Errorf("no radgate log line: %v", err)
	} else {
		t.Logf("log: %s", line)
	}
	// Release the held association; the slot comes back.
	if _, err := held.Write(releaseRQ()); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := readPDU(held, replyReadTimeout); err != nil || typ != pduReleaseRP {
		t.Errorf("A-RELEASE-RP: type 0x%02x, %v", typ, err)
	}
	_ = held.Close()
	if err := waitFor(10*time.Second, func() error {
		_, err := echo(t, r, "ECHOSCU", r.Config.AE)
		return err
	}); err != nil {
		t.Fatalf("echoscu after the held association was released: %v", err)
	}
}
