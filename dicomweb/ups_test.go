package dicomweb

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/internal/worklisttest"
)

// newUPSServer is a Server with the worklist over a fresh store.
func newUPSServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, wl := worklisttest.Open(t)
	s, err := New(st, ingest.New(st, nil, nil), Config{Worklist: wl}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", MediaDICOMJSON)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func attr(t *testing.T, d dicomjson.Dataset, tag uint32) string {
	t.Helper()
	a := d[dicomjson.Key(tag)]
	if a == nil || len(a.Value) == 0 {
		return ""
	}
	b, _ := json.Marshal(a.Value[0])
	return strings.Trim(string(b), `"`)
}

func TestUPSRS(t *testing.T) {
	hs := newUPSServer(t)
	base := hs.URL + Prefix + "/workitems"
	const uid = "2.25.1001"
	create := `{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741204":{"vr":"LO","Value":["Read CT head"]},
		"00404005":{"vr":"DT","Value":["20261202080000+0000"]},"00100020":{"vr":"LO","Value":["P1"]}}`
	if code, b := do(t, "POST", base+"?"+uid, create); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	if code, _ := do(t, "POST", base+"?"+uid, create); code != http.StatusConflict {
		t.Errorf("second create: %d", code)
	}
	code, b := do(t, "GET", base+"/"+uid, "")
	var got []dicomjson.Dataset
	if code != 200 || json.Unmarshal(b, &got) != nil || len(got) != 1 ||
		attr(t, got[0], 0x00741000) != "SCHEDULED" || attr(t, got[0], 0x00741200) != "MEDIUM" || attr(t, got[0], 0x00080018) != uid {
		t.Fatalf("retrieve: %d %s", code, b)
	}
	for q, want := range map[string]int{
		"ProcedureStepState=SCHEDULED":                  200,
		"ScheduledProcedureStepPriority=HIGH":           204,
		"ScheduledProcedureStepStartDateTime=20261202":  200,
		"ScheduledProcedureStepStartDateTime=20261203-": 204,
		"00741000=COMPLETED":                            204,
		"PatientName=Doe":                               400,
		"ProcedureStepState=DONE":                       400,
		"ScheduledProcedureStepStartDateTime=yesterday": 400,
		"limit=x": 400,
		"ProcedureStepState=SCHEDULED&limit=1&includefield=all": 200,
	} {
		if code, b := do(t, "GET", base+"?"+q, ""); code != want {
			t.Errorf("search %s: %d %s, want %d", q, code, b, want)
		}
	}

	// A subscriber on the event channel sees the priority change and the
	// state changes.
	if code, b := do(t, "POST", base+"/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER", ""); code != http.StatusCreated {
		t.Fatalf("subscribe: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+Prefix+"/subscribers/VIEWER", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	time.Sleep(100 * time.Millisecond) // the channel subscribes to the feed
	next := func() dicomjson.Dataset {
		t.Helper()
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var arr []dicomjson.Dataset
		if err := json.Unmarshal(msg, &arr); err != nil || len(arr) != 1 {
			t.Fatalf("event %s: %v", msg, err)
		}
		return arr[0]
	}

	if code, b := do(t, "POST", base+"/"+uid, `{"00741200":{"vr":"CS","Value":["HIGH"]}}`); code != 200 {
		t.Fatalf("update priority: %d %s", code, b)
	}
	ev := next()
	if attr(t, ev, 0x00001000) != uid || attr(t, ev, 0x00001002) != "3" || attr(t, ev, 0x00741200) != "HIGH" {
		t.Errorf("priority event %v", ev)
	}
	state := func(s, tx string) string {
		return `{"00741000":{"vr":"CS","Value":["` + s + `"]},"00081195":{"vr":"UI","Value":["` + tx + `"]}}`
	}
	if code, b := do(t, "PUT", base+"/"+uid+"/state", state("IN PROGRESS", "2.25.9")); code != 200 {
		t.Fatalf("to IN PROGRESS: %d %s", code, b)
	}
	if ev := next(); attr(t, ev, 0x00001002) != "1" || attr(t, ev, 0x00741000) != "IN PROGRESS" {
		t.Errorf("state event %v", ev)
	}
	if code, _ := do(t, "POST", base+"/"+uid, `{"00741204":{"vr":"LO","Value":["x"]}}`); code != http.StatusConflict {
		t.Errorf("update without the transaction: %d", code)
	}
	if code, _ := do(t, "POST", base+"/"+uid+"?transaction=2.25.9", `{"00741204":{"vr":"LO","Value":["Read CT head again"]}}`); code != 200 {
		t.Errorf("update with the transaction: %d", code)
	}
	next()
	if code, _ := do(t, "PUT", base+"/"+uid+"/state", state("COMPLETED", "2.25.8")); code != http.StatusConflict {
		t.Errorf("completed by another: %d", code)
	}
	if code, _ := do(t, "PUT", base+"/"+uid+"/state", state("COMPLETED", "2.25.9")); code != 200 {
		t.Errorf("completed: %d", code)
	}
	if ev := next(); attr(t, ev, 0x00741000) != "COMPLETED" {
		t.Errorf("completion event %v", ev)
	}
	if code, _ := do(t, "POST", base+"/"+uid+"/cancelrequest", ""); code != http.StatusConflict {
		t.Errorf("cancel a completed one: %d", code)
	}

	for name, tc := range map[string]struct {
		method, path, body string
		want               int
	}{
		"bad json":      {"POST", base + "?2.25.2", `{`, 400},
		"unknown":       {"GET", base + "/2.25.404", "", 404},
		"state no tx":   {"PUT", base + "/" + uid + "/state", `{"00741000":{"vr":"CS","Value":["IN PROGRESS"]}}`, 400},
		"bad AE":        {"POST", base + "/" + uid + "/subscribers/" + strings.Repeat("A", 17), "", 400},
		"filtered":      {"POST", base + "/1.2.840.10008.5.1.4.34.5.1/subscribers/VIEWER", "", 400},
		"unknown sub":   {"POST", base + "/2.25.404/subscribers/VIEWER", "", 404},
		"set the state": {"POST", base + "/" + uid, `{"00741000":{"vr":"CS","Value":["SCHEDULED"]}}`, 400},
	} {
		if code, b := do(t, tc.method, tc.path, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", name, code, b, tc.want)
		}
	}
}
