package worklist

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// HL7 v2.5 messages to a RIS, queued in the outbox for an MLLP
// destination:
//
//   - a priority change (a "priority" event: an AI finding's raise, a
//     route asking for more, a person's change) is an OMI^O23 imaging
//     order with ORC-1 XO (change order) and the new priority in TQ1-9;
//   - a model's result (a "findings" event with the result) is an
//     ORU^R01 with one OBX per finding, result status P (preliminary),
//     and the workitem's priority in TQ1-9.
//
// Both name the order by the accession number (ORC-2/ORC-3, OBR-2/OBR-3,
// OBR-18 as IHE Radiology does, IPC-1) and the study by its Study Instance
// UID (IPC-3 in the order, ZDS-1 in the result, as IHE Radiology's ZDS
// segment does); the patient by PID-3 (the Patient ID) and PID-5.
//
// MSH-10, the message control ID, is also the delivery's ObjectUID (one
// per destination): it is derived from the workitem UID, its newest event
// Seq and modification time before the change (the change's own events
// are not numbered yet when the sink runs; each change numbers at least
// one, so the pair is different for every change) and the message kind.
// A change that is rolled back and made again derives the same ID, and the
// outbox queues it once.

// HL7 message kinds, as deliveries carry them.
const (
	KindHL7Order  = "hl7-omi"
	KindHL7Result = "hl7-oru"
)

// PreliminaryNote is the note every AI-caused HL7 message carries;
// PhantomNote is added when the model learnt from synthetic phantoms.
const (
	PreliminaryNote = "AI result, preliminary: a radiologist must review it"
	PhantomNote     = "Not for clinical use: the model was trained on synthetic phantoms"
)

// HL7Sink is a Sink that tells a RIS over HL7 v2.5 of priority changes and
// AI results.
type HL7Sink struct {
	dest     string
	app, fac string
	// Phantoms says whether model@version learnt from synthetic phantoms
	// (nil: none did).
	Phantoms func(model, version string) bool
}

// NewHL7Sink makes the sink for one outbox destination (mllp://HOST:PORT),
// sending as sendingApp (MSH-3) at sendingFacility (MSH-4).
func NewHL7Sink(destination, sendingApp, sendingFacility string) *HL7Sink {
	return &HL7Sink{dest: destination, app: sendingApp, fac: sendingFacility}
}

// Destination is the outbox destination the sink queues for.
func (h *HL7Sink) Destination() string { return h.dest }

// Deliveries implements Sink.
func (h *HL7Sink) Deliveries(w store.Workitem, events []store.WorklistEvent, res *Result) ([]store.NewDelivery, error) {
	var pri *store.WorklistEvent
	findings := false
	for i, e := range events {
		switch e.Kind {
		case "priority":
			pri = &events[i]
		case "findings":
			findings = true
		}
	}
	var out []store.NewDelivery
	at := time.Now().UTC()
	if findings && res != nil && res.Result != nil {
		id := h.controlID(w, KindHL7Result)
		out = append(out, store.NewDelivery{Destination: h.dest, Kind: KindHL7Result, ObjectUID: id,
			Payload: h.oru(w, id, at, pri, res), ReadyAt: at})
	}
	if pri != nil {
		id := h.controlID(w, KindHL7Order)
		out = append(out, store.NewDelivery{Destination: h.dest, Kind: KindHL7Order, ObjectUID: id,
			Payload: h.omi(w, id, at, *pri, res), ReadyAt: at})
	}
	return out, nil
}

// controlID is MSH-10: 20 characters (HL7 v2.5's ST length for it), the
// kind's letter and 19 hex digits of a hash of the workitem's state
// before the change.
func (h *HL7Sink) controlID(w store.Workitem, kind string) string {
	s := sha256.New()
	var n [16]byte
	binary.BigEndian.PutUint64(n[:8], w.Seq)
	binary.BigEndian.PutUint64(n[8:], uint64(w.UpdatedAt.UnixNano()))
	s.Write([]byte(w.UID))
	s.Write([]byte{0})
	s.Write(n[:])
	s.Write([]byte(kind))
	letter := "O"
	if kind == KindHL7Result {
		letter = "R"
	}
	return letter + strings.ToUpper(hex.EncodeToString(s.Sum(nil)))[:19]
}

// TQ1Priority is p as TQ1-9 (HL7 Table 0485): S (STAT), A (ASAP: HIGH),
// R (ROUTINE; LOW too).
func TQ1Priority(p inference.Priority) string {
	switch Clinical(p) {
	case "STAT":
		return "S"
	case "HIGH":
		return "A"
	}
	return "R"
}

// HL7Escape escapes the HL7 v2 delimiters (with the default encoding
// characters |^~\&) in a value: \F\ \S\ \R\ \E\ \T\; line breaks become
// \.br\, other control characters a space.
func HL7Escape(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '|':
			b.WriteString(`\F\`)
		case '^':
			b.WriteString(`\S\`)
		case '~':
			b.WriteString(`\R\`)
		case '\\':
			b.WriteString(`\E\`)
		case '&':
			b.WriteString(`\T\`)
		case '\n':
			b.WriteString(`\.br\`)
		case '\r':
		default:
			if r < 0x20 || r == 0x7F {
				r = ' '
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// comps joins components, each escaped; trailing empty ones dropped.
func comps(parts ...string) string {
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	for i, p := range parts {
		parts[i] = HL7Escape(p)
	}
	return strings.Join(parts, "^")
}

// hl7Order is what the messages say of the workitem.
type hl7Order struct {
	patientID, patientName, birth, sex string
	accession, studyUID, modality      string
	procedure                          string
}

func orderOf(w store.Workitem) hl7Order {
	o := hl7Order{studyUID: w.StudyInstanceUID, modality: w.Modality, procedure: w.Description}
	var d dicomjson.Dataset
	if json.Unmarshal(w.Dataset, &d) != nil {
		return o
	}
	o.patientID, o.patientName = value(d, tagPatientID), value(d, tagPatientName)
	o.birth, o.sex = value(d, tagPatientBirthDate), value(d, tagPatientSex)
	if a := d[dicomjson.Key(tagReferencedRequestSequence)]; a != nil && len(a.Value) > 0 {
		var req dicomjson.Dataset
		if b, err := json.Marshal(a.Value[0]); err == nil && json.Unmarshal(b, &req) == nil {
			o.accession = value(req, tagAccessionNumber)
			if o.procedure == "" {
				o.procedure = value(req, tagRequestedProcedureDesc)
			}
			if o.studyUID == "" {
				o.studyUID = value(req, tagStudyInstanceUID)
			}
		}
	}
	if o.studyUID == "" {
		o.studyUID = value(d, tagStudyInstanceUID)
	}
	if o.modality == "" {
		o.modality = value(d, tagModality)
	}
	if o.procedure == "" {
		o.procedure = value(d, tagProcedureStepLabel)
	}
	return o
}

// xpn is a DICOM PN's alphabetic group (family^given^middle^prefix^suffix)
// as an HL7 XPN (family^given^middle^suffix^prefix).
func xpn(pn string) string {
	c := strings.Split(pn, "^")
	for len(c) < 5 {
		c = append(c, "")
	}
	return comps(c[0], c[1], c[2], c[4], c[3])
}

// msg builds a message segment by segment, fields escaped by the caller.
type msg struct{ b strings.Builder }

func (m *msg) seg(fields ...string) {
	for len(fields) > 1 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	m.b.WriteString(strings.Join(fields, "|"))
	m.b.WriteByte('\r')
}

func (h *HL7Sink) header(m *msg, typ, id string, at time.Time) {
	// MSH-1 is the field separator itself: the join writes it.
	m.seg("MSH", `^~\&`, HL7Escape(h.app), HL7Escape(h.fac), "", "", at.Format("20060102150405-0700"), "",
		typ, id, "P", "2.5", "", "", "", "", "", "UNICODE UTF-8")
}

func (h *HL7Sink) patient(m *msg, o hl7Order) {
	m.seg("PID", "1", "", comps(o.patientID, "", "", "", "PI"), "", xpn(o.patientName), "", HL7Escape(o.birth), HL7Escape(o.sex))
}

// orc is ORC with OBR, the order as the RIS knows it.
func (h *HL7Sink) orc(m *msg, control, status string, o hl7Order, at time.Time) {
	acc := comps(o.accession)
	m.seg("ORC", control, acc, acc, "", status, "", "", "", at.Format("20060102150405-0700"))
}

func (h *HL7Sink) obr(m *msg, o hl7Order, resultStatus string, at time.Time) {
	acc := comps(o.accession)
	service := comps(o.modality, o.procedure, "L")
	if o.modality == "" {
		service = comps("READ", o.procedure, "L")
	}
	f := []string{"OBR", "1", acc, acc, service}
	for len(f) < 26 {
		f = append(f, "")
	}
	f[18] = acc // OBR-18 placer field 1: the accession number (IHE RAD)
	if resultStatus != "" {
		f[22] = at.Format("20060102150405-0700") // OBR-22 results report/status change
		f[25] = resultStatus
	}
	m.seg(f...)
}

func tq1(m *msg, p inference.Priority) {
	m.seg("TQ1", "1", "", "", "", "", "", "", "", TQ1Priority(p))
}

type notes struct {
	m *msg
	n int
}

func (n *notes) add(text string) {
	if text == "" {
		return
	}
	n.n++
	n.m.seg("NTE", strconv.Itoa(n.n), "L", HL7Escape(text))
}

// aiNotes are the notes of an AI-caused message.
func (h *HL7Sink) aiNotes(n *notes, model, version string) {
	n.add(PreliminaryNote)
	if h.Phantoms != nil && h.Phantoms(model, version) {
		n.add(PhantomNote)
	}
}

func aiActor(actor string) (model, version string, ok bool) {
	rest, ok := strings.CutPrefix(actor, "ai:")
	if !ok {
		return "", "", false
	}
	model, version, _ = strings.Cut(rest, "@")
	return model, version, true
}

// omi is the OMI^O23 of a priority change.
func (h *HL7Sink) omi(w store.Workitem, id string, at time.Time, ev store.WorklistEvent, res *Result) []byte {
	o := orderOf(w)
	var m msg
	h.header(&m, "OMI^O23^OMI_O23", id, at)
	h.patient(&m, o)
	h.orc(&m, "XO", "SC", o, at)
	tq1(&m, inference.Priority(w.Priority))
	h.obr(&m, o, "", at)
	n := notes{m: &m}
	reason := ev.Reason
	if reason == "" {
		reason = w.Reason
	}
	n.add(fmt.Sprintf("Priority %s -> %s by %s: %s", ev.From, ev.To, ev.Actor, reason))
	if model, version, ok := aiActor(ev.Actor); ok {
		h.aiNotes(&n, model, version)
	} else if res != nil {
		h.aiNotes(&n, res.Model, res.Version)
	}
	m.seg("IPC", comps(o.accession), "", comps(o.studyUID, "", "Application", "DICOM"), "", HL7Escape(o.modality))
	return []byte(m.b.String())
}

// oru is the ORU^R01 of a model's result.
func (h *HL7Sink) oru(w store.Workitem, id string, at time.Time, pri *store.WorklistEvent, res *Result) []byte {
	o := orderOf(w)
	var m msg
	h.header(&m, "ORU^R01^ORU_R01", id, at)
	h.patient(&m, o)
	h.orc(&m, "RE", "IP", o, at)
	h.obr(&m, o, "P", at)
	n := notes{m: &m}
	n.add(fmt.Sprintf("AI model %s@%s; priority %s", res.Model, res.Version, Clinical(inference.Priority(w.Priority))))
	if pri != nil {
		n.add(fmt.Sprintf("Priority %s -> %s: %s", pri.From, pri.To, pri.Reason))
	}
	h.aiNotes(&n, res.Model, res.Version)
	tq1(&m, inference.Priority(w.Priority))
	method := comps(res.Model+"@"+res.Version, "AI model", "L")
	for i, f := range res.Result.Findings {
		code, meaning, scheme := f.Concept.Code, f.Concept.Meaning, f.Concept.Scheme
		if code == "" {
			code, scheme = f.Label, "L"
		}
		if meaning == "" {
			meaning = f.Label
		}
		flag := "N"
		if f.Positive {
			flag = "A"
		}
		fields := []string{"OBX", strconv.Itoa(i + 1), "NM", comps(code, meaning, scheme), HL7Escape(f.Label),
			strconv.FormatFloat(f.Probability, 'f', 4, 64), comps("1", "probability", "UCUM"),
			"<" + strconv.FormatFloat(f.Threshold, 'f', 4, 64), flag, "", "", "P", "", "", at.Format("20060102150405-0700"),
			"", "", method}
		m.seg(fields...)
	}
	m.seg("ZDS", comps(o.studyUID, h.app, "Application", "DICOM"))
	return []byte(m.b.String())
}
