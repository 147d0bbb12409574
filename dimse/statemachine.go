package dimse

import "fmt"

// state is an association state of PS3.8 Table 9-10.
type state uint8

const (
	sta01 state = iota + 1 // Idle
	sta02                  // Transport open, awaiting A-ASSOCIATE-RQ PDU
	sta03                  // Awaiting local A-ASSOCIATE response primitive
	sta04                  // Awaiting transport connection opening to complete
	sta05                  // Awaiting A-ASSOCIATE-AC or -RJ PDU
	sta06                  // Association established, ready for data transfer
	sta07                  // Awaiting A-RELEASE-RP PDU
	sta08                  // Awaiting local A-RELEASE response primitive
	sta09                  // Release collision requestor side: awaiting A-RELEASE response
	sta10                  // Release collision acceptor side: awaiting A-RELEASE-RP PDU
	sta11                  // Release collision requestor side: awaiting A-RELEASE-RP PDU
	sta12                  // Release collision acceptor side: awaiting A-RELEASE response
	sta13                  // Awaiting transport connection close indication
)

// event is an event of PS3.8 Table 9-10.
type event uint8

const (
	evt01 event = iota + 1 // A-ASSOCIATE request (local user)
	evt02                  // Transport connection confirm
	evt03                  // A-ASSOCIATE-AC PDU received
	evt04                  // A-ASSOCIATE-RJ PDU received
	evt05                  // Transport connection indication
	evt06                  // A-ASSOCIATE-RQ PDU received
	evt07                  // A-ASSOCIATE response primitive (accept)
	evt08                  // A-ASSOCIATE response primitive (reject)
	evt09                  // P-DATA request primitive
	evt10                  // P-DATA-TF PDU received
	evt11                  // A-RELEASE request primitive
	evt12                  // A-RELEASE-RQ PDU received
	evt13                  // A-RELEASE-RP PDU received
	evt14                  // A-RELEASE response primitive
	evt15                  // A-ABORT request primitive
	evt16                  // A-ABORT PDU received
	evt17                  // Transport connection closed indication
	evt18                  // ARTIM timer expired
	evt19                  // Unrecognized or invalid PDU received
)

// action is an action of PS3.8 Tables 9-6 to 9-9.
type action uint8

const (
	ae1  action = iota + 1 // issue transport connect request
	ae2                    // send A-ASSOCIATE-RQ PDU
	ae3                    // issue A-ASSOCIATE confirmation (accept)
	ae4                    // issue A-ASSOCIATE confirmation (reject), close transport
	ae5                    // issue transport connection response, start ARTIM
	ae6                    // stop ARTIM, issue A-ASSOCIATE indication
	ae7                    // send A-ASSOCIATE-AC PDU
	ae8                    // send A-ASSOCIATE-RJ PDU, start ARTIM
	dt1                    // send P-DATA-TF PDU
	dt2                    // issue P-DATA indication
	ar1                    // send A-RELEASE-RQ PDU
	ar2                    // issue A-RELEASE indication
	ar3                    // issue A-RELEASE confirmation, close transport
	ar4                    // send A-RELEASE-RP PDU, start ARTIM
	ar5                    // stop ARTIM
	ar6                    // issue P-DATA indication
	ar7                    // send P-DATA-TF PDU
	ar8                    // issue A-RELEASE indication (release collision)
	ar9                    // send A-RELEASE-RP PDU
	ar10                   // issue A-RELEASE confirmation
	aa1                    // send A-ABORT PDU (service-user), start ARTIM
	aa2                    // stop ARTIM, close transport
	aa3                    // issue A-ABORT or A-P-ABORT indication, close transport
	aa4                    // issue A-P-ABORT indication
	aa5                    // stop ARTIM
	aa6                    // ignore PDU
	aa7                    // send A-ABORT PDU
	aa8                    // send A-ABORT PDU (service-provider), issue A-P-ABORT, start ARTIM
)

var actionNames = [...]string{
	ae1: "AE-1", ae2: "AE-2", ae3: "AE-3", ae4: "AE-4", ae5: "AE-5", ae6: "AE-6", ae7: "AE-7", ae8: "AE-8",
	dt1: "DT-1", dt2: "DT-2",
	ar1: "AR-1", ar2: "AR-2", ar3: "AR-3", ar4: "AR-4", ar5: "AR-5", ar6: "AR-6", ar7: "AR-7", ar8: "AR-8", ar9: "AR-9", ar10: "AR-10",
	aa1: "AA-1", aa2: "AA-2", aa3: "AA-3", aa4: "AA-4", aa5: "AA-5", aa6: "AA-6", aa7: "AA-7", aa8: "AA-8",
}

func (a action) String() string {
	if int(a) < len(actionNames) && actionNames[a] != "" {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

func (s state) String() string { return fmt.Sprintf("Sta%d", s) }
func (e event) String() string { return fmt.Sprintf("Evt%d", e) }

type stateEvent struct {
	s state
	e event
}

// transition is one cell of Table 9-10. Where the table lets the action
// choose between two next states (AE-6: Sta3 or Sta13; AR-8: Sta9 or
// Sta10), next is the first and the action's caller picks the other.
type transition struct {
	do   action
	next state
}

// stateTable is PS3.8 Table 9-10. A (state, event) pair that is not listed
// is not allowed; the machine then takes AA-8 (A-ABORT, Sta13) as the
// table does for every blank cell of an established association, or AA-1
// before one exists.
var stateTable = map[stateEvent]transition{
	{sta01, evt01}: {ae1, sta04},
	{sta01, evt05}: {ae5, sta02},

	{sta02, evt03}: {aa1, sta13},
	{sta02, evt04}: {aa1, sta13},
	{sta02, evt06}: {ae6, sta03}, // or AE-8 path to Sta13 when rejected
	{sta02, evt10}: {aa1, sta13},
	{sta02, evt12}: {aa1, sta13},
	{sta02, evt13}: {aa1, sta13},
	{sta02, evt16}: {aa2, sta01},
	{sta02, evt17}: {aa5, sta01},
	{sta02, evt18}: {aa2, sta01},
	{sta02, evt19}: {aa1, sta13},

	{sta03, evt03}: {aa8, sta13},
	{sta03, evt04}: {aa8, sta13},
	{sta03, evt06}: {aa8, sta13},
	{sta03, evt07}: {ae7, sta06},
	{sta03, evt08}: {ae8, sta13},
	{sta03, evt10}: {aa8, sta13},
	{sta03, evt12}: {aa8, sta13},
	{sta03, evt13}: {aa8, sta13},
	{sta03, evt15}: {aa1, sta13},
	{sta03, evt16}: {aa3, sta01},
	{sta03, evt17}: {aa4, sta01},
	{sta03, evt19}: {aa8, sta13},

	{sta04, evt02}: {ae2, sta05},
	{sta04, evt15}: {aa2, sta01},
	{sta04, evt17}: {aa4, sta01},

	{sta05, evt03}: {ae3, sta06},
	{sta05, evt04}: {ae4, sta01},
	{sta05, evt06}: {aa8, sta13},
	{sta05, evt10}: {aa8, sta13},
	{sta05, evt12}: {aa8, sta13},
	{sta05, evt13}: {aa8, sta13},
	{sta05, evt15}: {aa1, sta13},
	{sta05, evt16}: {aa3, sta01},
	{sta05, evt17}: {aa4, sta01},
	{sta05, evt19}: {aa8, sta13},

	{sta06, evt03}: {aa8, sta13},
	{sta06, evt04}: {aa8, sta13},
	{sta06, evt06}: {aa8, sta13},
	{sta06, evt09}: {dt1, sta06},
	{sta06, evt10}: {dt2, sta06},
	{sta06, evt11}: {ar1, sta07},
	{sta06, evt12}: {ar2, sta08},
	{sta06, evt13}: {aa8, sta13},
	{sta06, evt15}: {aa1, sta13},
	{sta06, evt16}: {aa3, sta01},
	{sta06, evt17}: {aa4, sta01},
	{sta06, evt19}: {aa8, sta13},

	{sta07, evt03}: {aa8, sta13},
	{sta07, evt04}: {aa8, sta13},
	{sta07, evt06}: {aa8, sta13},
	{sta07, evt10}: {ar6, sta07},
	{sta07, evt12}: {ar8, sta09}, // Sta10 on the acceptor side
	{sta07, evt13}: {ar3, sta01},
	{sta07, evt15}: {aa1, sta13},
	{sta07, evt16}: {aa3, sta01},
	{sta07, evt17}: {aa4, sta01},
	{sta07, evt19}: {aa8, sta13},

	{sta08, evt03}: {aa8, sta13},
	{sta08, evt04}: {aa8, sta13},
	{sta08, evt06}: {aa8, sta13},
	{sta08, evt09}: {ar7, sta08},
	{sta08, evt10}: {aa8, sta13},
	{sta08, evt12}: {aa8, sta13},
	{sta08, evt13}: {aa8, sta13},
	{sta08, evt14}: {ar4, sta13},
	{sta08, evt15}: {aa1, sta13},
	{sta08, evt16}: {aa3, sta01},
	{sta08, evt17}: {aa4, sta01},
	{sta08, evt19}: {aa8, sta13},

	{sta09, evt14}: {ar9, sta11},
	{sta09, evt15}: {aa1, sta13},
	{sta09, evt16}: {aa3, sta01},
	{sta09, evt17}: {aa4, sta01},

	{sta10, evt13}: {ar10, sta12},
	{sta10, evt15}: {aa1, sta13},
	{sta10, evt16}: {aa3, sta01},
	{sta10, evt17}: {aa4, sta01},

	{sta11, evt13}: {ar3, sta01},
	{sta11, evt15}: {aa1, sta13},
	{sta11, evt16}: {aa3, sta01},
	{sta11, evt17}: {aa4, sta01},

	{sta12, evt14}: {ar4, sta13},
	{sta12, evt15}: {aa1, sta13},
	{sta12, evt16}: {aa3, sta01},
	{sta12, evt17}: {aa4, sta01},

	{sta13, evt03}: {aa6, sta13},
	{sta13, evt04}: {aa6, sta13},
	{sta13, evt06}: {aa7, sta13},
	{sta13, evt10}: {aa6, sta13},
	{sta13, evt12}: {aa6, sta13},
	{sta13, evt13}: {aa6, sta13},
	{sta13, evt16}: {aa2, sta01},
	{sta13, evt17}: {ar5, sta01},
	{sta13, evt18}: {aa2, sta01},
	{sta13, evt19}: {aa7, sta13},
}

// lookup returns the transition for (s, e). Blank cells of Table 9-10 are
// protocol errors: in Sta2 the table answers AA-1, elsewhere AA-8.
func lookup(s state, e event) (transition, bool) {
	if t, ok := stateTable[stateEvent{s, e}]; ok {
		return t, true
	}
	if s == sta02 {
		return transition{aa1, sta13}, false
	}
	return transition{aa8, sta13}, false
}

// pduEvent maps a received PDU type to its event.
func pduEvent(typ byte) event {
	switch typ {
	case pduAssociateAC:
		return evt03
	case pduAssociateRJ:
		return evt04
	case pduAssociateRQ:
		return evt06
	case pduPDataTF:
		return evt10
	case pduReleaseRQ:
		return evt12
	case pduReleaseRP:
		return evt13
	case pduAbort:
		return evt16
	}
	return evt19
}
