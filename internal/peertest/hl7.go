package peertest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// HL7Python is the interpreter with Debian's python3-hl7 (the system one:
// a pyenv or venv python3 earlier in PATH does not see dist-packages).
const HL7Python = "/usr/bin/python3"

// hl7Module is a file of python3-hl7's MLLP server.
const hl7Module = "/usr/lib/python3/dist-packages/hl7/mllp/streams.py"

// HL7Server is test/peers/hl7-server.py: an MLLP receiver (python3-hl7)
// that logs what it parsed of each message, one JSON object a line.
type HL7Server struct {
	*Proc
	Addr    string // 127.0.0.1:PORT
	MsgPath string // the JSON lines
}

// HL7Message is one line of the server's log.
type HL7Message struct {
	Type          string   `json:"type"`
	ControlID     string   `json:"control_id"`
	Version       string   `json:"version"`
	PatientID     string   `json:"patient_id"`
	PatientFamily string   `json:"patient_family"`
	PatientGiven  string   `json:"patient_given"`
	OrderControl  string   `json:"order_control"`
	Accession     string   `json:"accession"`
	Priority      string   `json:"priority"`
	ResultStatus  string   `json:"result_status"`
	StudyUID      string   `json:"study_uid"`
	Notes         []string `json:"notes"`
	OBX           []struct {
		Type, Code, Meaning, Scheme, Value, Flag, Status string
	} `json:"obx"`
	Ack string `json:"ack"`
}

// StartHL7Server starts the receiver on 127.0.0.1:port answering ack
// (AA, AE, AR…), its messages logged to msgPath (appended: a server
// restarted on the same file keeps the earlier ones), and waits until it
// listens. It is stopped when t ends.
func StartHL7Server(t testing.TB, port int, ack, msgPath string) *HL7Server {
	t.Helper()
	Require(t, "hl7")
	peers, err := PeersDir()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(msgPath), "hl7-server-"+strconv.Itoa(port)+".log")
	p, err := Launch(HL7Python, []string{filepath.Join(peers, "hl7-server.py"), "--port", strconv.Itoa(port), "--log", msgPath, "--ack", ack},
		nil, filepath.Dir(msgPath), logPath)
	if err != nil {
		t.Fatal(err)
	}
	cleanupProc(t, p)
	if _, err := p.WaitLog(0, regexp.MustCompile(`listening `), ReadyTimeout); err != nil {
		t.Fatal(err)
	}
	return &HL7Server{Proc: p, Addr: "127.0.0.1:" + strconv.Itoa(port), MsgPath: msgPath}
}

// Messages reads the messages logged so far.
func (s *HL7Server) Messages() ([]HL7Message, error) { return ReadHL7Messages(s.MsgPath) }

// ReadHL7Messages reads an hl7-server.py log (none yet: no messages).
func ReadHL7Messages(path string) ([]HL7Message, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []HL7Message
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var m HL7Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("peertest: %s: %w", path, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
