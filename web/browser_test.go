package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/worklist"
)

// chromium finds a headless-capable Chromium (Debian package chromium),
// skipping the test without one (failing it under RADGATE_REQUIRE_PEERS=1).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := peertest.Tool(name); err == nil {
			return p
		}
	}
	msg := "peer tool(s) not installed: chromium (Debian: apt-get install chromium; or run scripts/test-deps.sh as root)"
	if os.Getenv(peertest.RequirePeersEnv) == "1" {
		t.Fatal(msg + " — failing because " + peertest.RequirePeersEnv + "=1")
	}
	t.Skip(msg)
	return ""
}

// artifacts is where the test's screenshots go: $RADGATE_ARTIFACTS/web, or
// the test's temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if d := os.Getenv("RADGATE_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "web")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives the page in headless Chromium: the STAT study first,
// a study raised by a positive finding moving to the top live (no reload)
// and announced, keyboard navigation into the study view, thumbnails with
// no pixel data falling back to their alt text, and the priority form.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	if testing.Short() {
		t.Skip("browser test in -short mode")
	}
	f := newFixture(t)
	t0 := time.Now().Add(-2 * time.Hour)
	oldest := f.complete(t, 1, "CT", "CT HEAD WO", inference.Routine, t0)
	stat := f.complete(t, 2, "CT", "CT HEAD TRAUMA", inference.Routine, t0.Add(time.Hour))
	f.done(t, stat, 0.91)
	f.complete(t, 3, "CR", "CHEST PA", inference.Routine, t0.Add(90*time.Minute))
	statUID, oldestUID := worklist.UID(studyUID(stat.n)), worklist.UID(studyUID(oldest.n))
	out := artifacts(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelB) // runs before the server closes: the browser's event stream ends first
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		p := filepath.Join(out, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Error(err)
			return
		}
		t.Logf("screenshot: %s", p)
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	waitFor := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("waiting for %s (%s): %v", what, js, err)
		}
	}
	const order = `Array.from(document.querySelectorAll('#worklist-rows tr[data-uid]')).map(r => r.dataset.uid).join(' ')`

	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#worklist"))); err != nil {
		t.Fatal(err)
	}
	waitFor("live updates", `document.getElementById('worklist').dataset.live === 'on'`)
	if got := strings.Fields(eval(order)); len(got) != 3 || got[0] != statUID || got[1] != oldestUID {
		t.Fatalf("rows %v: want the STAT study %s first, then the longest waiting", got, statUID)
	}
	if b := eval(`document.querySelector('#worklist-rows tr').querySelector('.badge').textContent`); b != "STAT" {
		t.Errorf("first badge %q", b)
	}
	if n := eval(`document.querySelector('.notice').textContent`); !strings.Contains(n, "not for clinical use") {
		t.Errorf("notice %q", n)
	}
	// No pixel data stored: every thumbnail falls back to its alt text.
	waitFor("thumbnails to fall back", `document.querySelectorAll('#worklist img').length === 0 && document.querySelectorAll('#worklist .noimg').length === 3`)
	if alt := eval(`document.querySelector('#worklist .noimg').textContent`); alt != "Preview of CT HEAD TRAUMA, middle slice" {
		t.Errorf("fallback %q", alt)
	}
	shot("worklist-initial")

	// A positive finding on the longest-waiting study: STAT, top of the
	// list, without a reload.
	eval(`window.__sameDocument = 'yes'`)
	f.done(t, oldest, 0.88)
	waitFor("the raised study at the top", `document.querySelector('#worklist-rows tr[data-uid]').dataset.uid === '`+oldestUID+`'`)
	if v := eval(`String(window.__sameDocument)`); v != "yes" {
		t.Error("the page reloaded")
	}
	waitFor("the announcement", `document.getElementById('live').textContent.includes('priority STAT')`)
	live := eval(`document.getElementById('live').textContent`)
	if !strings.Contains(live, "CT HEAD WO") || !strings.Contains(live, "1 of 3") {
		t.Errorf("announced %q", live)
	}
	t.Logf("announced: %s", live)
	if got := strings.Fields(eval(order)); len(got) != 3 || got[0] != oldestUID || got[1] != statUID {
		t.Errorf("rows after the raise %v", got)
	}
	shot("worklist-live-update")

	// Keyboard: j to the first row, j to the second, k back, Enter opens it.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("j")); err != nil {
		t.Fatal(err)
	}
	if got := eval(`document.activeElement.dataset.uid || ''`); got != oldestUID {
		t.Errorf("j: focus on %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("j"), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent("k")); err != nil {
		t.Fatal(err)
	}
	if got := eval(`document.activeElement.dataset.uid || ''`); got != statUID {
		t.Errorf("j ↓ k: focus on %q, want the second row", got)
	}
	if got := eval(`document.activeElement.tabIndex + ''`); got != "0" {
		t.Errorf("focused row tabindex %s", got)
	}
	shot("worklist-keyboard-focus")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#findings-h"))); err != nil {
		t.Fatal(err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, ItemsPath+statUID) {
		t.Errorf("Enter opened %s", loc)
	}
	waitFor("key images to fall back", `document.querySelectorAll('.images img').length === 0 && document.querySelectorAll('.images .noimg').length === 5`)
	body := eval(`document.body.innerText`)
	for _, s := range []string{"Hemorrhage", "Positive", "0.91", "ct-ich@1.0.0", studyUID(stat.n) + ".9.1", "Priority history", "not for clinical use"} {
		if !strings.Contains(body, s) {
			t.Errorf("study view lacks %q", s)
		}
	}
	shot("study-view")

	// The form: back to ROUTINE, with a reason (same-origin: allowed).
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#priority"), "ROUTINE"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "reviewed: calcification, not a bleed"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".saved")),
	); err != nil {
		t.Fatal(err)
	}
	w, err := f.wl.Get(context.Background(), statUID)
	if err != nil || w.Priority != int(inference.Routine) || !w.Override || w.Reason != "reviewed: calcification, not a bleed" {
		t.Errorf("after the form: %+v, %v", w, err)
	}
	if h := eval(`document.querySelector('.history tbody tr:last-child').innerText`); !strings.Contains(h, "page") || !strings.Contains(h, "ROUTINE") {
		t.Errorf("last history row %q", h)
	}
	shot("study-view-priority-set")
}
