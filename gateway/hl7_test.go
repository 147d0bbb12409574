package gateway

import (
	"context"
	"testing"

	"github.com/radgate/radgate/internal/peertest"
)

// TestHL7DestinationStopsTheStart: worklist_hl7_to takes mllp://HOST:PORT
// only; anything else stops the start.
func TestHL7DestinationStopsTheStart(t *testing.T) {
	for _, dest := range []string{"mllp://ris.example", "dimse://RIS@127.0.0.1:2575", "ris.example:2575", "mllp://u@h:1"} {
		startRefused(t, "worklist_hl7_to", "RADGATE_WORKLIST_HL7_TO="+dest)
	}
	g, err := New(context.Background(), testConfig(t, "RADGATE_WORKLIST_HL7_TO=mllp://127.0.0.1:2575, mllp://[::1]:2576"), peertest.Logger(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	g.closeAll()
}
