package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
)

func hl7Msg(id string) []byte {
	return []byte("MSH|^~\\&|RADGATE|RADGATE|||20261202080000+0000||OMI^O23^OMI_O23|" + id + "|P|2.5\rPID|1||P1^^^^PI||Doe^Jane\rORC|XO|A1|A1\rTQ1|1||||||||S\r")
}

func TestParseMLLP(t *testing.T) {
	for _, tc := range []struct {
		dest string
		ok   bool
	}{
		{"mllp://ris.example:2575", true},
		{"mllp://[::1]:2575", true},
		{"mllp://ris.example", false},
		{"mllp://u@ris.example:2575", false},
		{"mllp://ris.example:2575/x", false},
		{"mllp://ris.example:2575?a=b", false},
		{"dimse://PACS@h:104", false},
	} {
		_, err := ParseMLLP(tc.dest)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrDestination)) {
			t.Errorf("ParseMLLP(%q) = %v, want ok=%v", tc.dest, err, tc.ok)
		}
		if _, err := Parse(tc.dest, Config{CallingAE: "RADGATE"}); tc.ok && err != nil {
			t.Errorf("Parse(%q) = %v", tc.dest, err)
		}
	}
}

func TestParseMLLPAck(t *testing.T) {
	for _, tc := range []struct {
		in        string
		code, id  string
		permanent bool
		ok        bool // accepted
		bad       bool
	}{
		{"MSH|^~\\&|RIS|H|RADGATE|RADGATE|20261202||ACK^O23|9|P|2.5\rMSA|AA|O1\r", "AA", "O1", false, true, false},
		{"MSH|^~\\&|RIS|H\rMSA|CA|O1\r", "CA", "O1", false, true, false},
		{"MSH|^~\\&|RIS|H\nMSA|AE|O1|busy\n", "AE", "O1", false, false, false},
		{"MSH|^~\\&|RIS|H\r\nMSA|AR|O1\r\nERR||||E|||||unknown order\r\n", "AR", "O1", true, false, false},
		{"MSH#^~\\&#RIS\rMSA#CR#O1\r", "CR", "O1", true, false, false},
		{"MSH|^~\\&|RIS|H\rMSA|XX|O1\r", "", "", false, false, true},
		{"MSH|^~\\&|RIS|H\r", "", "", false, false, true},
		{"MSA|AA|O1\r", "", "", false, false, true},
		{"", "", "", false, false, true},
	} {
		ack, err := ParseMLLPAck([]byte(tc.in))
		if tc.bad {
			if !errors.Is(err, ErrMLLPAck) {
				t.Errorf("ParseMLLPAck(%q) = %+v, %v; want ErrMLLPAck", tc.in, ack, err)
			}
			continue
		}
		if err != nil || ack.Code != tc.code || ack.ControlID != tc.id {
			t.Errorf("ParseMLLPAck(%q) = %+v, %v", tc.in, ack, err)
			continue
		}
		if e := ack.Err(); (e == nil) != tc.ok || errors.Is(e, ErrPermanent) != tc.permanent {
			t.Errorf("%s: Err() = %v", tc.code, e)
		}
	}
}

// fakeRIS answers each frame with ack(controlID).
func fakeRIS(t *testing.T, ack func(id string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					b, err := readMLLPFrame(r, 1<<20)
					if err != nil {
						return
					}
					id, _ := controlID(b)
					a := ack(id)
					if a == "" {
						continue // no answer: the sender times out
					}
					if _, err := c.Write([]byte("\x0b" + a + "\x1c\r")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestMLLPSender: without python3-hl7, an in-process receiver; the
// outcomes by MSA-1, a wrong MSA-2, no answer, a non-HL7 payload.
func TestMLLPSender(t *testing.T) {
	addr := fakeRIS(t, func(id string) string {
		code, _, _ := strings.Cut(id, "-")
		switch code {
		case "SILENT":
			return ""
		case "WRONG":
			return "MSH|^~\\&|RIS\rMSA|AA|other\r"
		}
		return "MSH|^~\\&|RIS\rMSA|" + code + "|" + id + "\r"
	})
	s := &mllpSender{addr: addr, timeout: 500 * time.Millisecond}
	batch := func(ids ...string) []store.Delivery {
		var out []store.Delivery
		for _, id := range ids {
			out = append(out, store.Delivery{Kind: "hl7-omi", ObjectUID: id, Payload: hl7Msg(id)})
		}
		return out
	}
	errs := s.Send(context.Background(), batch("AA-1", "CA-2", "AE-3", "AR-4", "CR-5", "CE-6"))
	for i, want := range []string{"ok", "ok", "retry", "dead", "dead", "retry"} {
		got := "ok"
		switch {
		case errors.Is(errs[i], ErrPermanent):
			got = "dead"
		case errs[i] != nil:
			got = "retry"
		}
		if got != want {
			t.Errorf("item %d: %v, want %s", i, errs[i], want)
		}
	}
	errs = s.Send(context.Background(), batch("WRONG-1", "AA-2"))
	if errs[0] == nil || errors.Is(errs[0], ErrPermanent) || errs[1] == nil || errors.Is(errs[1], ErrPermanent) {
		t.Errorf("a wrong MSA-2 and the item after it: %v", errs)
	}
	errs = s.Send(context.Background(), batch("SILENT-1"))
	if errs[0] == nil || errors.Is(errs[0], ErrPermanent) {
		t.Errorf("no ACK: %v", errs)
	}
	errs = s.Send(context.Background(), []store.Delivery{{Payload: []byte("DICM not HL7")}, batch("AA-9")[0]})
	if !errors.Is(errs[0], ErrPermanent) || errs[1] != nil {
		t.Errorf("a non-HL7 payload, then one: %v", errs)
	}
	down := &mllpSender{addr: "127.0.0.1:" + strconv.Itoa(peertest.MustFreePort(t)), timeout: time.Second}
	if errs := down.Send(context.Background(), batch("AA-1")); errs[0] == nil || errors.Is(errs[0], ErrPermanent) {
		t.Errorf("receiver down: %v", errs)
	}
}

// TestMLLPOutboxPeer: python3-hl7's receiver answering AR dead-letters at
// once; answering AE is retried.
func TestMLLPOutboxPeer(t *testing.T) {
	peertest.Require(t, "hl7")
	dir := t.TempDir()
	for _, tc := range []struct {
		ack  string
		want store.DeliveryState
	}{{"AR", store.DeliveryDead}, {"AE", store.DeliveryPending}} {
		t.Run(tc.ack, func(t *testing.T) {
			st := openStore(t)
			srv := peertest.StartHL7Server(t, peertest.MustFreePort(t), tc.ack, filepath.Join(dir, tc.ack+".jsonl"))
			dest := "mllp://" + srv.Addr
			o, err := New(st.Work(), Config{MaxAttempts: 10, Backoff: 200 * time.Millisecond, BackoffMax: time.Second, Poll: 50 * time.Millisecond}, nil, prometheus.NewRegistry(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Worklist().CreateWorkitem(context.Background(), store.Workitem{UID: "1.2.3.9", State: "SCHEDULED", Dataset: []byte("{}")}, "test",
				store.NewDelivery{Destination: dest, Kind: "hl7-omi", ObjectUID: "O-" + tc.ack, Payload: hl7Msg("O-" + tc.ack), ReadyAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			run(t, o)
			o.Notify()
			deadline := time.Now().Add(20 * time.Second)
			for {
				ms, err := srv.Messages()
				if err != nil {
					t.Fatal(err)
				}
				n, err := st.Work().WorkCounts(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if tc.want == store.DeliveryDead && n.Deliveries[store.DeliveryDead] == 1 && len(ms) == 1 {
					return
				}
				if tc.want == store.DeliveryPending && len(ms) >= 2 && n.Deliveries[store.DeliveryPending] == 1 {
					return // received, refused with AE, received again
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %s: %d received, outbox %v", tc.ack, len(ms), n.Deliveries)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// FuzzMLLPAck: arbitrary ACK frames neither panic nor yield an outcome
// for a malformed one.
func FuzzMLLPAck(f *testing.F) {
	f.Add([]byte("MSH|^~\\&|RIS|H|||||ACK|1|P|2.5\rMSA|AA|O1\r"))
	f.Add([]byte("MSH|^~\\&|RIS\rMSA|AR|O1\rERR||||E|||||no\r"))
	f.Add([]byte("MSH\rMSA"))
	f.Add([]byte("MSH|^~\\&\r\nMSA|CE\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ack, err := ParseMLLPAck(b)
		if err != nil {
			if !errors.Is(err, ErrMLLPAck) {
				t.Fatalf("error %v is not ErrMLLPAck", err)
			}
			return
		}
		switch ack.Code {
		case "AA", "CA":
			if ack.Err() != nil {
				t.Fatal("accepted with an error")
			}
		case "AR", "CR":
			if !errors.Is(ack.Err(), ErrPermanent) {
				t.Fatal("rejected, not permanent")
			}
		case "AE", "CE":
			if e := ack.Err(); e == nil || errors.Is(e, ErrPermanent) {
				t.Fatal("error, not retryable")
			}
		default:
			t.Fatalf("code %q", ack.Code)
		}
		// A frame carrying it (without MLLP's block characters) reads
		// back the same.
		if bytes.ContainsAny(b, "\x0b\x1c") {
			return
		}
		r := bufio.NewReader(strings.NewReader("\x0b" + string(b) + "\x1c\r"))
		if fb, err := readMLLPFrame(r, 1<<20); err != nil {
			t.Fatalf("framed: %v", err)
		} else {
			if again, err := ParseMLLPAck(fb); err != nil || again != ack {
				t.Fatalf("framed: %+v, %v", again, err)
			}
		}
	})
}
