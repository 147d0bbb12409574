package ingest

import (
	"context"
	"net"
	"slices"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/store"
)

// Recorder takes an audit message for the trail (nil: no audit trail).
type Recorder func(audit.Message)

// Subject is the patient and studies an audit message is about.
type Subject struct {
	Patient audit.Patient
	Studies []audit.Study
}

// Subjects groups instances by patient, and each patient's by study with
// its SOP class counts: one audit message per patient (PS3.15 A.5.3.7
// names one patient per message).
func Subjects(ins []store.Instance) []Subject {
	var out []Subject
	for _, in := range ins {
		i := slices.IndexFunc(out, func(s Subject) bool { return s.Patient.ID == in.PatientID && s.Patient.Name == in.PatientName })
		if i < 0 {
			out = append(out, Subject{Patient: audit.Patient{ID: in.PatientID, Name: in.PatientName}})
			i = len(out) - 1
		}
		s := &out[i]
		j := slices.IndexFunc(s.Studies, func(st audit.Study) bool { return st.UID == in.StudyInstanceUID })
		if j < 0 {
			s.Studies = append(s.Studies, audit.Study{UID: in.StudyInstanceUID, Accession: in.AccessionNumber, SOPClasses: map[string]int{}})
			j = len(s.Studies) - 1
		}
		s.Studies[j].SOPClasses[in.SOPClassUID]++
	}
	return out
}

// Client is the requesting side of an HTTP or gRPC call for an audit
// message: the network peer, and the authenticated user when there is one.
func Client(ctx context.Context, remoteAddr, what string) (peer, user audit.Node) {
	peer = audit.Node{ID: what, Addr: remoteAddr}
	if p, ok := auth.FromContext(ctx); ok {
		user = audit.Node{ID: p.Subject, Name: p.Name}
		if p.ClientID != "" {
			peer.ID = p.ClientID
		}
	}
	return peer, user
}

// Received records the instances a transfer stored: one DICOM Instances
// Transferred (create) message per patient.
func (r Recorder) Received(from, to, user audit.Node, ins []store.Instance) {
	if r == nil || len(ins) == 0 {
		return
	}
	for _, s := range Subjects(ins) {
		r(audit.InstancesReceived(audit.Transfer{From: from, To: to, User: user, Patient: s.Patient, Studies: s.Studies}))
	}
}

// Node is radgate as a participant: its AE title (and address, if known).
func Node(ae, addr string) audit.Node {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return audit.Node{ID: ae, Addr: addr}
}
