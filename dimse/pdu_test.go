package dimse

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func samplePDUs() []PDU {
	return []PDU{
		&AssociateRQ{
			ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: "STORESCU",
			ApplicationContext: applicationContextName,
			PresentationContexts: []PresentationContextRQ{
				{ID: 1, AbstractSyntax: "1.2.840.10008.1.1", TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
				{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"}},
			},
			UserInfo: UserInfo{
				MaxLength: 16384, ImplementationClassUID: "1.2.3.4", ImplementationVersionName: "TEST_1",
				AsyncOps:       &AsyncOps{MaxInvoked: 0, MaxPerformed: 1},
				RoleSelections: []RoleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCU: true}},
				UserIdentity:   &UserIdentity{Type: 2, PositiveResponseRequested: true, Primary: []byte("user"), Secondary: []byte("pw")},
			},
		},
		&AssociateAC{
			ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: "STORESCU",
			ApplicationContext: applicationContextName,
			PresentationContexts: []PresentationContextAC{
				{ID: 1, Result: ResultAcceptance, TransferSyntax: "1.2.840.10008.1.2"},
				{ID: 3, Result: ResultTransferSyntaxNotSupported, TransferSyntax: "1.2.840.10008.1.2.1"},
			},
			UserInfo: UserInfo{MaxLength: 0, ImplementationClassUID: "1.2.3", UserIdentityResponse: []byte{}},
		},
		&AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectCalledAENotRecognized},
		&PDataTF{Items: []PDV{{ContextID: 1, Command: true, Last: true, Data: []byte{1, 2, 3, 4}}, {ContextID: 3, Data: []byte{}}}},
		&ReleaseRQ{},
		&ReleaseRP{},
		&Abort{Source: AbortSourceProvider, Reason: AbortReasonUnexpectedPDU},
	}
}

func TestPDURoundTrip(t *testing.T) {
	for _, p := range samplePDUs() {
		b := EncodePDU(nil, p)
		// Byte at a time: the reader must not depend on read sizes.
		got, err := ReadPDU(iotest.OneByteReader(bytes.NewReader(b)), DefaultMaxPDULength)
		if err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("%T round trip (-want +got):\n%s", p, diff)
		}
	}
}

func TestReadPDURejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"unknown type", []byte{0x09, 0, 0, 0, 0, 0}, ErrUnknownPDU},
		{"4 GB P-DATA", []byte{0x04, 0, 0xff, 0xff, 0xff, 0xff}, ErrPDUTooLarge},
		{"4 GB associate", []byte{0x01, 0, 0xff, 0xff, 0xff, 0xff}, ErrPDUTooLarge},
		{"long abort", []byte{0x07, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}, ErrPDUTooLarge},
		{"short abort", []byte{0x07, 0, 0, 0, 0, 2, 0, 0}, ErrMalformedPDU},
		{"truncated body", []byte{0x05, 0, 0, 0, 0, 4, 0}, ErrMalformedPDU},
		{"PDV longer than PDU", []byte{0x04, 0, 0, 0, 0, 8, 0, 0, 0, 9, 1, 3, 0, 0}, ErrMalformedPDU},
		{"empty PDV", []byte{0x04, 0, 0, 0, 0, 4, 0, 0, 0, 1}, ErrMalformedPDU},
		{"associate too short", []byte{0x01, 0, 0, 0, 0, 10, 0, 1, 0, 0, 'A', 'B', 'C', 'D', 'E', 'F'}, ErrMalformedPDU},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadPDU(bytes.NewReader(tc.in), DefaultMaxPDULength)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadPDUTruncatedEverywhere(t *testing.T) {
	for _, p := range samplePDUs() {
		b := EncodePDU(nil, p)
		for i := 0; i < len(b); i++ {
			if _, err := ReadPDU(bytes.NewReader(b[:i]), DefaultMaxPDULength); err == nil {
				t.Fatalf("%T truncated at %d/%d: no error", p, i, len(b))
			}
		}
	}
}

func FuzzReadPDU(f *testing.F) {
	for _, p := range samplePDUs() {
		f.Add(EncodePDU(nil, p))
	}
	f.Add([]byte{0x04, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same value.
		b2 := EncodePDU(nil, p)
		p2, err := ReadPDU(bytes.NewReader(b2), 1<<20)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", p, err)
		}
		if diff := cmp.Diff(p, p2); diff != "" {
			t.Fatalf("re-encode changed %T:\n%s", p, diff)
		}
	})
}

func TestCommandRoundTrip(t *testing.T) {
	cmds := []*Command{
		{CommandField: CEchoRQ, MessageID: 7, AffectedSOPClassUID: "1.2.840.10008.1.1"},
		{CommandField: CEchoRSP, MessageIDBeingRespondedTo: 7, AffectedSOPClassUID: "1.2.840.10008.1.1", Status: StatusSuccess},
		{CommandField: CStoreRQ, MessageID: 65535, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstanceUID: "1.2.3.4.5",
			Priority: PriorityHigh, HasDataSet: true, MoveOriginatorAE: "MOVER", MoveOriginatorMessageID: 3},
		{CommandField: CStoreRSP, MessageIDBeingRespondedTo: 1, AffectedSOPClassUID: "1.2", AffectedSOPInstanceUID: "1.2.3",
			Status: StatusOutOfResources, ErrorComment: "disk full"},
	}
	for _, c := range cmds {
		b := EncodeCommand(nil, c)
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c, got, cmp.AllowUnexported(Command{}), cmpIgnoreSeen); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

var cmpIgnoreSeen = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".seen" }, cmp.Ignore())

func TestDecodeCommandRejects(t *testing.T) {
	good := EncodeCommand(nil, &Command{CommandField: CEchoRQ, MessageID: 1, AffectedSOPClassUID: "1.2.840.10008.1.1"})
	for i := 1; i < len(good); i++ {
		if _, err := DecodeCommand(good[:i]); err == nil && i != len(good) {
			// A prefix ending exactly at an element boundary may still lack
			// required fields; either way it must not decode as complete.
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
	notGroup0 := append(append([]byte{}, good...), 0x08, 0, 0x18, 0, 2, 0, 0, 0, '1', 0)
	if _, err := DecodeCommand(notGroup0); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("element outside group 0000: err = %v", err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodeCommand(nil, &Command{CommandField: CStoreRQ, MessageID: 1, AffectedSOPClassUID: "1.2", AffectedSOPInstanceUID: "1.2.3", HasDataSet: true}))
	f.Add(EncodeCommand(nil, &Command{CommandField: CEchoRSP, MessageIDBeingRespondedTo: 1, Status: 0xA700, ErrorComment: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		c2, err := DecodeCommand(EncodeCommand(nil, c))
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if c.CommandField != c2.CommandField || c.HasDataSet != c2.HasDataSet || c.Status != c2.Status && c.IsResponse() {
			t.Fatalf("re-encode changed the command: %+v vs %+v", c, c2)
		}
	})
}

func TestStateTableCoversPS38(t *testing.T) {
	// Every state has an entry for A-ABORT received and transport closed
	// (Table 9-10 has them in every column but Sta1 and Sta4's Evt16).
	for s := sta02; s <= sta13; s++ {
		if _, ok := stateTable[stateEvent{s, evt17}]; !ok && s != sta01 {
			t.Errorf("%s has no Evt17 entry", s)
		}
	}
	// Blank cells abort.
	if tr, ok := lookup(sta06, evt07); ok || tr.do != aa8 || tr.next != sta13 {
		t.Errorf("Sta6/Evt7 = %v,%v ok=%v; want AA-8 → Sta13", tr.do, tr.next, ok)
	}
	if tr, _ := lookup(sta02, evt09); tr.do != aa1 {
		t.Errorf("Sta2 blank cell = %v; want AA-1", tr.do)
	}
	want := map[stateEvent]transition{
		{sta06, evt10}: {dt2, sta06},
		{sta06, evt12}: {ar2, sta08},
		{sta08, evt14}: {ar4, sta13},
		{sta13, evt17}: {ar5, sta01},
		{sta02, evt18}: {aa2, sta01},
	}
	for k, w := range want {
		if got := stateTable[k]; got != w {
			t.Errorf("%s/%s = %v→%s, want %v→%s", k.s, k.e, got.do, got.next, w.do, w.next)
		}
	}
}
