package dimse

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/dcm"
)

// FuzzServerAssociation feeds arbitrary bytes to an established association
// on the SCP: whatever arrives, the server must end the association cleanly
// (no panic, no hang) and never hand the handler a data set as complete
// unless the PDVs said so.
func FuzzServerAssociation(f *testing.F) {
	storeCmd := EncodeCommand(nil, &Command{CommandField: CStoreRQ, MessageID: 1, AffectedSOPClassUID: ctImageStorage, AffectedSOPInstanceUID: "1.2.3", HasDataSet: true})
	echoCmd := EncodeCommand(nil, &Command{CommandField: CEchoRQ, MessageID: 2, AffectedSOPClassUID: dcm.VerificationSOPClass})
	f.Add(EncodePDU(nil, &PDataTF{Items: []PDV{{ContextID: 1, Command: true, Last: true, Data: storeCmd}, {ContextID: 1, Last: true, Data: []byte{1, 2, 3, 4}}}}))
	f.Add(append(EncodePDU(nil, &PDataTF{Items: []PDV{{ContextID: 3, Command: true, Last: true, Data: echoCmd}}}), EncodePDU(nil, &ReleaseRQ{})...))
	f.Add(EncodePDU(nil, &Abort{}))
	f.Add([]byte{0x04, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3})

	f.Fuzz(func(t *testing.T, in []byte) {
		var logs bytes.Buffer
		var mu sync.Mutex
		s := &Server{
			Policy:      Policy{AETitle: "RADGATE"},
			Handler:     newMemHandler(),
			ARTIM:       200 * time.Millisecond,
			IdleTimeout: 200 * time.Millisecond,
			Logger:      slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
		}
		s.conns = map[*Association]struct{}{}
		client, server := net.Pipe()
		s.track(server)
		go func() { _, _ = io.Copy(io.Discard, client) }()
		rq := &AssociateRQ{ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: "FUZZ", ApplicationContext: applicationContextName,
			PresentationContexts: []PresentationContextRQ{
				{ID: 1, AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian}},
				{ID: 3, AbstractSyntax: dcm.VerificationSOPClass, TransferSyntaxes: []string{dcm.ImplicitVRLittleEndian}},
			}}
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write(EncodePDU(nil, rq))
		_, _ = client.Write(in)
		_ = client.Close()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("association goroutine did not end")
		}
		mu.Lock()
		defer mu.Unlock()
		if bytes.Contains(logs.Bytes(), []byte("panic")) {
			t.Fatalf("server panicked:\n%s", logs.String())
		}
	})
}
