package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/worklist"
)

// upsPriority reads a workitem's Scheduled Procedure Step Priority over
// UPS-RS ("" when there is none yet).
func upsPriority(t *testing.T, base, uid string) string {
	t.Helper()
	resp, err := http.Get(base + "/dicomweb/workitems/" + uid)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	var arr []map[string]struct{ Value []any }
	if err := json.NewDecoder(resp.Body).Decode(&arr); err != nil || len(arr) != 1 {
		t.Fatalf("workitem: %v", err)
	}
	if v := arr[0]["00741200"].Value; len(v) == 1 {
		s, _ := v[0].(string)
		return s
	}
	return ""
}

// TestWorklistPriorityRaise: a positive head CT sent over DIMSE becomes a
// workitem whose priority its finding raises to HIGH (STAT) within the
// pipeline's latency; a UPS-RS event channel subscriber hears of it, and a
// second radgate acting as the external UPS-RS worklist manager has the
// workitem at the new priority.
func TestWorklistPriorityRaise(t *testing.T) {
	manager, _, _ := startGateway(t)
	managerURL := "http://" + manager.HTTPAddr().String()
	g, _, _ := startGateway(t, "RADGATE_STUDY_QUIET=1s", "RADGATE_WORKLIST_UPS_TO="+managerURL+"/dicomweb")
	base := "http://" + g.HTTPAddr().String()

	// A viewer subscribes to every workitem and opens its channel.
	req, _ := http.NewRequest("POST", base+"/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("subscribe: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/dicomweb/subscribers/VIEWER", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	events := make(chan map[string]struct{ Value []any }, 16)
	go func() {
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				close(events)
				return
			}
			var arr []map[string]struct{ Value []any }
			if json.Unmarshal(msg, &arr) == nil && len(arr) == 1 {
				events <- arr[0]
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)

	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 5, Slices: 8}
	ins, err := phantom.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i, in := range ins {
		p := filepath.Join(dir, strings.Repeat("x", i+1)+".dcm")
		if err := os.WriteFile(p, in.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	if sum, err := dimse.SendFiles(ctx, g.DIMSEAddr().String(), files, dimse.SendOptions{Client: dimse.ClientConfig{CallingAE: "CT01", CalledAE: "RADGATE"}}); err != nil || sum.Stored != len(files) {
		t.Fatalf("send: %+v %v", sum, err)
	}
	sent := time.Now()
	uid := worklist.UID(spec.StudyInstanceUID())

	// The raise, as the subscriber hears it.
	var raised time.Duration
	for raised == 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event channel closed")
			}
			if len(ev["00001000"].Value) == 1 && ev["00001000"].Value[0] == uid && len(ev["00741200"].Value) == 1 && ev["00741200"].Value[0] == "HIGH" {
				raised = time.Since(sent)
			}
		case <-ctx.Done():
			t.Fatal("no priority raise heard")
		}
	}
	t.Logf("priority raised %v after the last instance was acknowledged (study_quiet 1s)", raised.Round(time.Millisecond))
	if p := upsPriority(t, base, uid); p != "HIGH" {
		t.Errorf("workitem priority %q, want HIGH", p)
	}
	// The external worklist manager has it too (through the outbox).
	deadline := time.Now().Add(30 * time.Second)
	for upsPriority(t, managerURL, uid) != "HIGH" {
		if time.Now().After(deadline) {
			t.Fatalf("the external worklist manager has priority %q", upsPriority(t, managerURL, uid))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
