// Package web is the radiologist's reading worklist page: the worklist at
// /, most urgent first, with the AI findings that raised a study, a
// thumbnail of each study (DICOMweb WADO-RS rendered), live updates over
// Server-Sent Events, and a study view where a person sets the priority.
// Server-rendered HTML (html/template, embedded), a little plain
// JavaScript, no front-end build.
//
// The pages show patient names and IDs (PHI). There is no user system
// yet: the routes must be put behind authentication (a reverse proxy, or
// the gateway's own once it has one) before real patient data reaches
// them. Nothing here logs patient data: logs name the route, never the
// path (which holds UIDs) or a value from a workitem's data set.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/worklist"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Paths the package serves (besides / itself).
const (
	RowsPath   = "/worklist/rows"   // the table body, for live reloads
	EventsPath = "/worklist/events" // Server-Sent Events
	ItemsPath  = "/worklist/items/" // + workitem UID: the study view
	StaticPath = "/worklist/static/"
)

// Actor is who a priority set on the page is recorded as when
// authentication is off (otherwise: the signed-in user).
const Actor = "page"

// DefaultLimit bounds the rows of the page.
const DefaultLimit = 500

// heartbeat keeps an idle event stream (and the proxies on its way)
// from timing out.
const heartbeat = 20 * time.Second

// Config is the page's settings.
type Config struct {
	// DICOMweb is where WADO-RS is served ("/dicomweb"), for thumbnails.
	DICOMweb string
	// Limit bounds the rows shown; 0: DefaultLimit.
	Limit int
	// SignOut is the sign-out form's target ("": no sessions, no button).
	SignOut string
}

// viewer is who is looking, as the page shows it: the signed-in user's
// name and role, and whether the role may change priorities.
type viewer struct {
	User, Role string
	CanWrite   bool
	SignOut    string
}

// roleOf maps a principal's scopes to the page's roles: an admin; a
// radiologist (worklist.write: may change priorities); an ML engineer
// (models.infer: sees the worklist, changes nothing); else a reader.
func (s *Server) viewer(r *http.Request) viewer {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		return viewer{CanWrite: true} // authentication off
	}
	v := viewer{User: actorOf(p), CanWrite: p.Has(auth.ScopeWorklistWrite), SignOut: s.cfg.SignOut}
	switch {
	case slices.Contains(p.Scopes, auth.ScopeAdmin):
		v.Role = "admin"
	case v.CanWrite:
		v.Role = "radiologist"
	case slices.Contains(p.Scopes, auth.ScopeModelsInfer):
		v.Role = "ML engineer"
	default:
		v.Role = "reader"
	}
	return v
}

// actorOf names a user in the priority history (not PHI: staff).
func actorOf(p *auth.Principal) string {
	if p.Name != "" {
		return p.Name
	}
	return p.Subject
}

// Server serves the pages.
type Server struct {
	wl   *worklist.Service
	cfg  Config
	log  *slog.Logger
	tmpl *template.Template
	now  func() time.Time

	// done ends the event streams: Close, or the HTTP server's Shutdown
	// (which would otherwise wait its grace period for them).
	done      chan struct{}
	closeOnce sync.Once
	hookMu    sync.Mutex
	hooked    map[*http.Server]bool
}

// New makes the pages over the worklist.
func New(wl *worklist.Service, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.DICOMweb == "" {
		cfg.DICOMweb = "/dicomweb"
	}
	cfg.DICOMweb = strings.TrimSuffix(cfg.DICOMweb, "/")
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := template.New("web").ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	return &Server{wl: wl, cfg: cfg, log: log, tmpl: t, now: time.Now, done: make(chan struct{}), hooked: map[*http.Server]bool{}}, nil
}

// Close ends the open event streams (their browsers reconnect).
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.done) }) }

// Register adds the page's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET "+StaticPath, http.StripPrefix(StaticPath, cacheStatic(http.FileServerFS(static))))
	mux.Handle("GET /{$}", s.page(s.index))
	mux.Handle("GET "+RowsPath, s.page(s.rows))
	mux.HandleFunc("GET "+EventsPath, s.events)
	mux.Handle("GET "+ItemsPath+"{uid}", s.page(s.item))
	// Same-origin only (Sec-Fetch-Site, or Origin against Host): a page
	// elsewhere cannot post the form on a radiologist's behalf.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("web: cross-origin request refused", "route", r.Pattern)
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	mux.Handle("POST "+ItemsPath+"{uid}/priority", cop.Handler(s.page(s.setPriority)))
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// page sets the headers every page (all of them PHI) gets.
func (s *Server) page(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h(w, r)
	})
}

// render executes a template, buffered so that a failure is a clean 500.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		s.log.Error("web: template failed", "route", r.Pattern, "template", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := worklist.HTTPStatus(err)
	if code >= 500 {
		// Store errors name tables and UIDs, never patient data.
		s.log.Error("web: request failed", "route", r.Pattern, "err", err)
		http.Error(w, "the worklist could not be read", code)
		return
	}
	http.Error(w, http.StatusText(code), code)
}

// listed are the workitems the page shows: those still to read.
func (s *Server) listed(ctx context.Context) ([]store.Workitem, error) {
	return s.wl.Search(ctx, store.WorkitemQuery{States: []string{worklist.Scheduled, worklist.InProgress}, Limit: s.cfg.Limit})
}

type indexData struct {
	Viewer viewer
	Rows   rowsData
	Static string
	Events string
	RowsAt string
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	rd, err := s.rowsData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "index.html", indexData{Viewer: s.viewer(r), Rows: rd, Static: StaticPath, Events: EventsPath, RowsAt: RowsPath})
}

func (s *Server) rows(w http.ResponseWriter, r *http.Request) {
	rd, err := s.rowsData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "rows", rd)
}

func (s *Server) rowsData(ctx context.Context) (rowsData, error) {
	ws, err := s.listed(ctx)
	if err != nil {
		return rowsData{}, err
	}
	now := s.now()
	rd := rowsData{Rows: make([]row, 0, len(ws))}
	for i, w := range ws {
		rd.Rows = append(rd.Rows, s.row(w, i+1, now))
	}
	return rd, nil
}

type itemData struct {
	Viewer   viewer
	Static   string
	Item     row
	Findings []finding
	Images   []image
	Events   []event
	Choices  []choice
	Error    string
	Saved    bool
	Reason   string
	Final    bool
}

type choice struct {
	Value, Label string
	Selected     bool
}

type event struct {
	At, AtISO, Kind, Actor, From, To, Reason string
}

func (s *Server) item(w http.ResponseWriter, r *http.Request) {
	s.showItem(w, r, http.StatusOK, "", "")
}

func (s *Server) showItem(w http.ResponseWriter, r *http.Request, code int, msg, reason string) {
	ctx := r.Context()
	uid := r.PathValue("uid")
	wi, err := s.wl.Get(ctx, uid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	evs, err := s.wl.Events(ctx, uid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	d := itemData{Viewer: s.viewer(r), Static: StaticPath, Item: s.row(wi, 0, now), Error: msg, Reason: reason,
		Saved: r.Method == http.MethodGet && r.URL.Query().Get("saved") == "1",
		Final: wi.State == worklist.Completed || wi.State == worklist.Canceled}
	d.Findings = findings(wi.Findings)
	d.Images = s.keyImages(wi)
	for _, e := range evs {
		d.Events = append(d.Events, event{At: e.At.Local().Format("2006-01-02 15:04:05"), AtISO: e.At.UTC().Format(time.RFC3339),
			Kind: e.Kind, Actor: e.Actor, From: e.From, To: e.To, Reason: e.Reason})
	}
	cur := worklist.Clinical(inference.Priority(wi.Priority))
	for _, c := range []string{"STAT", "HIGH", "ROUTINE"} {
		d.Choices = append(d.Choices, choice{Value: c, Label: c, Selected: c == cur})
	}
	s.render(w, r, code, "item.html", d)
}

// maxReason bounds the reason a person gives.
const maxReason = 500

func (s *Server) setPriority(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	uid := r.PathValue("uid")
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	p, err := worklist.ParseClinical(r.PostForm.Get("priority"))
	if err == nil && p < inference.Routine {
		p = inference.Routine // the page offers STAT, HIGH, ROUTINE
	}
	if err != nil {
		s.showItem(w, r, http.StatusBadRequest, "Choose STAT, HIGH or ROUTINE.", reason)
		return
	}
	if len(reason) > maxReason {
		s.showItem(w, r, http.StatusBadRequest, fmt.Sprintf("The reason is too long (at most %d characters).", maxReason), reason[:maxReason])
		return
	}
	actor := Actor
	if who, ok := auth.FromContext(r.Context()); ok {
		actor = actorOf(who)
	}
	if _, err := s.wl.SetPriority(r.Context(), uid, p, actor, reason); err != nil {
		switch {
		case errors.Is(err, worklist.ErrState):
			s.showItem(w, r, http.StatusConflict, "This study's workitem is finished; its priority can no longer be changed.", reason)
		default:
			s.fail(w, r, err)
		}
		return
	}
	s.log.Info("web: priority set", "workitem", uid, "priority", worklist.Clinical(p), "actor", actor)
	http.Redirect(w, r, ItemsPath+uid+"?saved=1", http.StatusSeeOther)
}

// feedEvent is one event as the page's script gets it: what changed,
// never patient data (the script fetches the rows for the rest).
type feedEvent struct {
	Seq  uint64 `json:"seq"`
	UID  string `json:"uid"`
	Kind string `json:"kind"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// events streams the worklist's changes as Server-Sent Events. It follows
// from now on: the script reloads the rows whenever the stream (re)opens,
// so nothing between a render and the subscription is missed.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	s.hookShutdown(r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	feed := s.wl.Subscribe(ctx, 0)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n: worklist\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case e, ok := <-feed:
			if !ok {
				// Fell behind, or the worklist stopped: the browser
				// reconnects and reloads.
				return
			}
			b, _ := json.Marshal(feedEvent{Seq: e.Seq, UID: e.UID, Kind: e.Kind, From: e.From, To: e.To})
			if _, err := fmt.Fprintf(w, "event: worklist\nid: %d\ndata: %s\n\n", e.Seq, b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// hookShutdown ends the streams when the HTTP server serving r shuts
// down: Shutdown waits for active requests, and a stream never ends by
// itself.
func (s *Server) hookShutdown(r *http.Request) {
	hs, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok || hs == nil {
		return
	}
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	if !s.hooked[hs] {
		s.hooked[hs] = true
		hs.RegisterOnShutdown(s.Close)
	}
}
