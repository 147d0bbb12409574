package audit

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/audit/audittest"
)

var when = time.Date(2026, 12, 2, 17, 0, 0, 123456789, time.UTC)

// constructed is one message from every constructor (the prune message too).
func constructed() []struct {
	name string
	msg  Message
} {
	h := Header{Source: "radgate-host", Time: when}
	fail := Header{Source: "radgate-host", Time: when, Description: "token expired"}
	peer := Node{ID: "MODALITY1", Addr: "192.0.2.7:51123"}
	gw := Node{ID: "RADGATE", Addr: "gateway.example"}
	pat := Patient{ID: "PID-0042", Name: "Doe^Jane"}
	st := Study{UID: "1.2.826.0.1.3680043.8.498.1", Accession: "ACC77", SOPClasses: map[string]int{
		"1.2.840.10008.5.1.4.1.1.2": 120, "1.2.840.10008.5.1.4.1.1.88.22": 1}}
	tr := Transfer{Header: h, From: peer, To: gw, Patient: pat, Studies: []Study{st}}
	out := Transfer{Header: h, From: gw, To: Node{ID: "PACS", Addr: "10.0.0.9"}, Patient: pat, Studies: []Study{st}}
	wado := Transfer{Header: h, From: gw, To: Node{ID: "viewer", Addr: "[2001:db8::1]:443"}, User: Node{ID: "dr.house", Name: "G. House"}, Patient: Patient{ID: "PID-1"}, Studies: []Study{{UID: "1.2.3"}}}
	app := AppEvent{Header: h, App: Node{ID: "radgate", Alt: "4242"}, Launcher: Node{ID: "systemd"}, Config: "/etc/radgate.yaml"}
	return []struct {
		name string
		msg  Message
	}{
		{"received", InstancesReceived(tr)},
		{"retrieved", StudyRetrieved(wado)},
		{"sent", InstancesSent(out)},
		{"query", Query(QueryEvent{Header: h, Client: Node{ID: "qido-client", Addr: "198.51.100.2"}, Server: gw, User: Node{ID: "alice"},
			SOPClassUID: SOPClassStudyRootFind, Query: []byte("PatientID=PID-0042&ModalitiesInStudy=CT")})},
		{"ups-query", Query(QueryEvent{Header: h, Client: Node{ID: "ris"}, Server: gw, SOPClassUID: SOPClassUPSPull, Query: []byte("ScheduledProcedureStepPriority=HIGH")})},
		{"priority", PriorityChanged(PriorityEvent{Header: h, User: Node{ID: "radgate"}, Patient: pat, Study: st, From: "ROUTINE", To: "STAT"})},
		{"export", DataExport(ExportEvent{Header: h, Exporter: gw, Destination: "https://ehr.example/fhir", Patient: pat, Studies: []Study{st}})},
		{"auth", AuthenticationFailed(AuthEvent{Header: fail, User: Node{ID: "svc-client", Addr: "203.0.113.5:40000"}, Node: gw})},
		{"auth-anon", AuthenticationFailed(AuthEvent{Header: fail, User: Node{Addr: "203.0.113.5"}, Node: gw})},
		{"node-auth", NodeAuthenticationFailed(AuthEvent{Header: Header{Source: "radgate-host", Time: when, Description: "certificate signed by unknown authority"},
			User: Node{ID: "CN=rogue", Addr: "203.0.113.9:104"}, Node: gw})},
		{"start", ApplicationStart(app)},
		{"stop", ApplicationStop(AppEvent{Header: h, App: Node{ID: "radgate"}})},
		{"config", ConfigurationChanged(app, "sha256:abc123")},
		{"deleted", StudyDeleted(DeleteEvent{Header: h, By: Node{ID: "radgate-retention"}, Patient: pat, Study: st})},
		{"log-used", AuditLogUsed(LogUseEvent{Header: h, User: Node{ID: "admin"}, Log: "file:///var/radgate/audit"})},
		{"log-pruned", auditLogPruned(LogUseEvent{Header: h, User: Node{ID: "radgate"}, Log: "file:///var/radgate/audit"}, "removed 2 files")},
	}
}

func TestConstructorsValidateAgainstSchema(t *testing.T) {
	rng := audittest.Schema(t)
	for _, c := range constructed() {
		t.Run(c.name, func(t *testing.T) {
			doc, err := c.msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := audittest.Validate(t, rng, c.name, doc); err != nil {
				t.Errorf("schema: %v\n%s", err, doc)
			}
		})
	}
}

// The validator must reject what the schema forbids, or the test above
// proves nothing.
func TestSchemaRejectsNonConforming(t *testing.T) {
	rng := audittest.Schema(t)
	good, err := constructed()[0].msg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"action":  strings.Replace(string(good), `EventActionCode="C"`, `EventActionCode="X"`, 1),
		"outcome": strings.Replace(string(good), `EventOutcomeIndicator="0"`, `EventOutcomeIndicator="3"`, 1),
		"no-name": strings.Replace(string(good), `<ParticipantObjectName>Doe^Jane</ParticipantObjectName>`, ``, 1),
		"foreign": strings.Replace(string(good), `</AuditMessage>`, `<Extra/></AuditMessage>`, 1),
	} {
		if bad == string(good) {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if audittest.Validate(t, rng, name, []byte(bad)) == nil {
			t.Errorf("%s: validator accepted a non-conforming message", name)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, c := range constructed() {
		t.Run(c.name, func(t *testing.T) {
			doc, err := c.msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			got.XMLName = c.msg.XMLName
			if d := cmp.Diff(c.msg, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestConstructorFields(t *testing.T) {
	q := Query(QueryEvent{Header: Header{Source: "s", Time: when}, Client: Node{ID: "c", Addr: "198.51.100.2:8080"}, Server: Node{ID: "g"},
		SOPClassUID: SOPClassStudyRootFind, Query: []byte("PatientID=X")})
	doc, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<EventID csd-code="110112" codeSystemName="DCM" originalText="Query">`,
		`EventActionCode="E"`,
		`NetworkAccessPointID="198.51.100.2" NetworkAccessPointTypeCode="2"`,
		`<ParticipantObjectQuery>UGF0aWVudElEPVg=</ParticipantObjectQuery>`,
		`EventDateTime="2026-12-02T17:00:00.123456789Z"`,
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("query message lacks %s:\n%s", want, doc)
		}
	}
	a := AuthenticationFailed(AuthEvent{Header: Header{Source: "s", Time: when}, Node: Node{ID: "g"}})
	if a.Event.Outcome != OutcomeMinorFailure || a.Participants[0].UserID != "unknown" || a.Event.TypeCodes[0].Code != "110122" {
		t.Errorf("auth failure: %+v", a.Event)
	}
}

func TestValidateRejects(t *testing.T) {
	ok := constructed()[0].msg
	for name, mutate := range map[string]func(*Message){
		"no event id":     func(m *Message) { m.Event.EventID = Code{} },
		"no time":         func(m *Message) { m.Event.DateTime = time.Time{} },
		"no participants": func(m *Message) { m.Participants = nil },
		"no source":       func(m *Message) { m.Source.SourceID = "" },
		"no user id":      func(m *Message) { m.Participants = []ActiveParticipant{{}} },
		"name and query": func(m *Message) {
			m.Objects = []ParticipantObject{{ID: "x", IDTypeCode: idURI, Name: "n", Query: Base64("q")}}
		},
		"neither": func(m *Message) { m.Objects = []ParticipantObject{{ID: "x", IDTypeCode: idURI}} },
	} {
		m := ok
		m.Participants = append([]ActiveParticipant(nil), ok.Participants...)
		mutate(&m)
		if _, err := m.Marshal(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Marshal = %v, want ErrInvalid", name, err)
		}
	}
}
