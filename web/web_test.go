package web

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/worklist"
)

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

var rowUID = regexp.MustCompile(`<tr data-uid="([^"]+)"`)

func rowOrder(body string) []string {
	var out []string
	for _, m := range rowUID.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// threeStudies: a routine study waiting longest, a HIGH one, and a STAT
// one (raised by a positive finding) that arrived last.
func threeStudies(t *testing.T, f *fixture) (routine, high, stat study) {
	t0 := time.Now().Add(-3 * time.Hour)
	routine = f.complete(t, 1, "CT", "CT HEAD WO", inference.Routine, t0)
	high = f.complete(t, 2, "MR", "MR BRAIN", inference.High, t0.Add(time.Hour))
	stat = f.complete(t, 3, "CT", "CT HEAD TRAUMA", inference.Routine, t0.Add(2*time.Hour))
	f.done(t, routine, 0.12)
	f.done(t, stat, 0.93)
	return
}

func TestWorklistPage(t *testing.T) {
	f := newFixture(t)
	routine, high, stat := threeStudies(t, f)

	res, body := get(t, f.srv.URL+"/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	for _, h := range []string{"Cache-Control", "Content-Security-Policy", "X-Frame-Options"} {
		if res.Header.Get(h) == "" {
			t.Errorf("no %s", h)
		}
	}
	want := []string{worklist.UID(studyUID(stat.n)), worklist.UID(studyUID(high.n)), worklist.UID(studyUID(routine.n))}
	if got := rowOrder(body); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows %v, want STAT, HIGH, ROUTINE %v", got, want)
	}
	for _, s := range []string{
		"AI results are preliminary;", "reference models trained on synthetic phantoms, not for clinical use",
		`<th scope="col">Priority</th>`, `aria-live="polite"`, `<caption>`,
		`<span class="badge pri-stat">STAT</span>`, `<span class="badge pri-high">HIGH</span>`, `<span class="badge pri-routine">ROUTINE</span>`,
		"Hemorrhage 0.93", "(ct-ich@1.0.0)", "No positive AI finding", "No AI result yet",
		"Phantom, Number3", "ID PHANTOM-3", "CT HEAD TRAUMA", "MR", "SCHEDULED", "3 h 00 min",
		// A CT's middle slice (3 of 5), an MR's first image; lazy, with alt text.
		`src="/dicomweb/studies/` + studyUID(3) + `/series/` + studyUID(3) + `.1/instances/` + studyUID(3) + `.1.3/rendered?viewport=96,96"`,
		`/instances/` + studyUID(2) + `.1.1/rendered`, `loading="lazy"`, `alt="Preview of CT HEAD TRAUMA, middle slice"`,
		`href="/worklist/items/` + worklist.UID(studyUID(3)) + `"`, `src="/worklist/static/worklist.js"`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(body, "Hemorrhage 0.12") {
		t.Error("a negative finding is flagged")
	}

	// The fragment the script reloads.
	res, rows := get(t, f.srv.URL+RowsPath)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(rows, `<tbody id="worklist-rows"`) || !strings.HasSuffix(rows, "</tbody>") {
		t.Fatalf("rows: %s %.80q", res.Status, rows)
	}
	if got := rowOrder(rows); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("fragment rows %v", got)
	}
	// The assets.
	for _, p := range []string{StaticPath + "worklist.js", StaticPath + "style.css"} {
		if res, b := get(t, f.srv.URL+p); res.StatusCode != http.StatusOK || len(b) < 100 {
			t.Errorf("%s: %s", p, res.Status)
		}
	}
	// Finished workitems leave the list.
	uid := worklist.UID(studyUID(high.n))
	if _, err := f.wl.RequestCancel(context.Background(), uid, "test", "ups-rs"); err != nil {
		t.Fatal(err)
	}
	if _, rows = get(t, f.srv.URL+RowsPath); strings.Contains(rows, uid) {
		t.Error("a canceled workitem is listed")
	}
	if res, _ := get(t, f.srv.URL+"/nowhere"); res.StatusCode != http.StatusNotFound {
		t.Errorf("/nowhere: %s", res.Status)
	}
}

func TestEmptyWorklist(t *testing.T) {
	f := newFixture(t)
	res, body := get(t, f.srv.URL+"/")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "No studies are waiting to be read.") {
		t.Errorf("empty: %s", res.Status)
	}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func TestStudyViewAndSetPriority(t *testing.T) {
	f := newFixture(t)
	_, _, stat := threeStudies(t, f)
	uid := worklist.UID(studyUID(stat.n))
	item := f.srv.URL + ItemsPath + uid

	res, body := get(t, item)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET item: %s", res.Status)
	}
	for _, s := range []string{
		"Hemorrhage", "<strong>Positive</strong>", "0.93", "0.50", "ct-ich@1.0.0", studyUID(stat.n) + ".9.1", // the SR
		"Key images", `alt="Series 1 of 1, image 1 of 5"`, `alt="Series 1 of 1, image 5 of 5"`, "Priority history",
		"ai:ct-ich@1.0.0", "Hemorrhage 0.93 ≥ 0.50", `<label for="priority">`, `<label for="reason">`,
		`<option value="STAT" selected>`, `action="/worklist/items/` + uid + `/priority"`, "not for clinical use",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("study view lacks %q", s)
		}
	}
	if res, _ := get(t, f.srv.URL+ItemsPath+"1.2.3.404"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown workitem: %s", res.Status)
	}

	c := &http.Client{CheckRedirect: noRedirect}
	post := func(form url.Values, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, item+"/priority", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	back := url.Values{"priority": {"ROUTINE"}, "reason": {"old bleed, known"}}
	// Cross-site: refused, nothing changes.
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}} {
		if res := post(back, h); res.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin %v: %s", h, res.Status)
		}
	}
	if w, _ := f.wl.Get(context.Background(), uid); w.Priority != int(inference.Stat) || w.Override {
		t.Fatalf("changed by a refused request: %+v", w)
	}
	if res := post(url.Values{"priority": {"URGENT"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); res.StatusCode != http.StatusBadRequest {
		t.Errorf("bad priority: %s", res.Status)
	}
	// Same-origin: set, and back to the study view.
	res = post(back, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": f.srv.URL})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != ItemsPath+uid+"?saved=1" {
		t.Fatalf("set priority: %s → %q", res.Status, res.Header.Get("Location"))
	}
	w, _ := f.wl.Get(context.Background(), uid)
	if w.Priority != int(inference.Routine) || !w.Override || w.Reason != "old bleed, known" {
		t.Errorf("after setting: %+v", w)
	}
	evs, _ := f.wl.Events(context.Background(), uid)
	if last := evs[len(evs)-1]; last.Actor != Actor || last.From != "STAT" || last.To != "ROUTINE" {
		t.Errorf("last event %+v", last)
	}
	_, body = get(t, item+"?saved=1")
	if !strings.Contains(body, "Priority saved.") || !strings.Contains(body, "old bleed, known") || !strings.Contains(body, "(set by a person)") {
		t.Error("the study view does not show the change")
	}
	// A finished workitem: 409, and no form.
	if _, err := f.wl.RequestCancel(context.Background(), uid, "test", "ups-rs"); err != nil {
		t.Fatal(err)
	}
	if res := post(back, map[string]string{"Sec-Fetch-Site": "same-origin"}); res.StatusCode != http.StatusConflict {
		t.Errorf("set on a canceled workitem: %s", res.Status)
	}
	// No patient data in the logs.
	logs := f.log.String()
	for _, phi := range []string{"Phantom", "PHANTOM-", "Number3"} {
		if strings.Contains(logs, phi) {
			t.Errorf("the log holds %q:\n%s", phi, logs)
		}
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t)
	routine := f.complete(t, 1, "CT", "CT HEAD", inference.Routine, time.Now())
	uid := worklist.UID(studyUID(routine.n))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+EventsPath, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	// Subscribed before the headers came: this change is on the stream.
	if _, err := f.wl.SetPriority(context.Background(), uid, inference.Stat, "test", "raise"); err != nil {
		t.Fatal(err)
	}
	// (The created event may come first: the feed had not read it yet.)
	sc := bufio.NewScanner(res.Body)
	var ev []string
	got := ""
	for sc.Scan() {
		line := sc.Text()
		if line == "" && len(ev) > 0 {
			if got = strings.Join(ev, "\n"); strings.Contains(got, `"kind":"priority"`) {
				break
			}
			ev = nil
		}
		if strings.HasPrefix(line, "event:") || strings.HasPrefix(line, "id:") || strings.HasPrefix(line, "data:") {
			ev = append(ev, line)
		}
	}
	if !strings.Contains(got, "event: worklist") || !strings.Contains(got, `"kind":"priority"`) ||
		!strings.Contains(got, `"uid":"`+uid+`"`) || !strings.Contains(got, `"to":"STAT"`) || strings.Contains(got, "raise") {
		t.Errorf("event %q", got)
	}
	// Close ends the stream.
	f.web.Close()
	endc := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, res.Body); endc <- err }()
	select {
	case <-endc:
	case <-time.After(5 * time.Second):
		t.Error("the stream outlived Close")
	}
}

func TestHelpers(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second: "under 1 min", 5 * time.Minute: "5 min", 65 * time.Minute: "1 h 05 min", 50 * time.Hour: "2 d 2 h",
	} {
		if got := waiting(d); got != want {
			t.Errorf("waiting(%s) = %q, want %q", d, got, want)
		}
	}
	for pn, want := range map[string]string{"Doe^Jane^Q": "Doe, Jane Q", "Doe": "Doe", "^Jane": "Jane", "": ""} {
		if got := personName(pn); got != want {
			t.Errorf("personName(%q) = %q", pn, got)
		}
	}
	if got := spread(3, 8); len(got) != 3 {
		t.Errorf("spread(3, 8) = %v", got)
	}
	if got := spread(100, 8); len(got) != 8 || got[0] != 0 || got[7] != 99 {
		t.Errorf("spread(100, 8) = %v", got)
	}
}
