package ingest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/store"
)

// The table the conformance statement (docs/conformance.md) documents.
func TestStatusTable(t *testing.T) {
	tests := []struct {
		outcome store.Outcome
		err     error
		dimse   uint16
		http    int
	}{
		{store.Stored, nil, 0x0000, 200},
		{store.DuplicateSame, nil, 0x0000, 200},
		{store.Replaced, nil, 0x0000, 200},
		{store.DuplicateKept, nil, 0xB006, 202},
		{0, fmt.Errorf("wrapped: %w", store.ErrOutOfResources), 0xA700, 503},
		{0, store.ErrTooLarge, 0xA700, 413},
		{0, fmt.Errorf("x: %w", store.ErrInvalidDataset), 0xC000, 400},
		{0, store.ErrUnknownTransferSyntax, 0xC000, 415},
		{0, store.ErrDuplicateRejected, 0x0111, 409},
		{0, fmt.Errorf("%w: peer aborted", dimse.ErrInterrupted), 0x0110, 400},
		{0, errors.New("disk on fire"), 0x0110, 500},
	}
	for _, tc := range tests {
		o := outcomeOf(tc.outcome, tc.err)
		if o.dimse != tc.dimse || o.http != tc.http {
			t.Errorf("outcomeOf(%v, %v) = %04X/%d, want %04X/%d", tc.outcome, tc.err, o.dimse, o.http, tc.dimse, tc.http)
		}
		st := dimse.Status{Code: o.dimse}
		if tc.err != nil && st.OK() {
			t.Errorf("%v maps to a success status %s", tc.err, st)
		}
	}
}
