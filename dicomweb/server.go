package dicomweb

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/internal/metric"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/worklist"
)

// Media types (PS3.18 8.7.3).
const (
	MediaDICOM     = "application/dicom"
	MediaDICOMJSON = "application/dicom+json"
	MediaOctet     = "application/octet-stream"
)

// Prefix is where the services live under the HTTP root (CONTRACT.md).
const Prefix = "/dicomweb"

// Config holds the limits of the services.
type Config struct {
	// MaxRequestBytes bounds a STOW-RS request body (413 beyond).
	MaxRequestBytes int64
	// MaxParts bounds the parts of one STOW-RS request (413 beyond).
	MaxParts int
	// MaxResults caps a QIDO-RS response whatever limit the query asks.
	MaxResults int
	// Worklist, when set, is served as UPS-RS under /workitems.
	Worklist *worklist.Service
}

// Defaults for Config's zero fields.
const (
	DefaultMaxRequestBytes = 4 << 30
	DefaultMaxParts        = 10000
	DefaultMaxResults      = 1000
)

// Server serves STOW-RS, QIDO-RS and WADO-RS over a Store, and UPS-RS
// over the reading worklist.
type Server struct {
	store  *store.Store
	ingest *ingest.Service
	cfg    Config
	log    *slog.Logger
	m      *metrics
	bufs   sync.Pool // *[]byte of retrieveBuffer bytes, for copying blobs out
	subs   subscriptions
}

// New makes a Server; metrics are registered on reg unless it is nil.
func New(st *store.Store, ing *ingest.Service, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = DefaultMaxParts
	}
	if cfg.MaxResults <= 0 {
		cfg.MaxResults = DefaultMaxResults
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	srv := &Server{store: st, ingest: ing, cfg: cfg, log: log, m: m, subs: subscriptions{ae: map[string]*subscription{}}}
	srv.bufs.New = func() any { b := make([]byte, retrieveBuffer); return &b }
	return srv, nil
}

// Register adds the services' routes to mux, under Prefix.
func (s *Server) Register(mux *http.ServeMux) {
	s.stowRoutes(mux)
	s.qidoRoutes(mux)
	s.wadoRoutes(mux)
	s.upsRoutes(mux)
	s.deleteRoutes(mux)
}

// handle registers one route of a service, measured.
func (s *Server) handle(mux *http.ServeMux, pattern, service string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(rw, r)
		s.m.requests.WithLabelValues(service, strconv.Itoa(rw.code)).Inc()
		s.m.seconds.WithLabelValues(service).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// fail answers an error with a one-line text body (no patient data: the
// messages name attributes and limits, never values). The log names the
// route, not the path: paths hold study and instance UIDs in clear.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if code >= 500 {
		s.log.Error("dicomweb: request failed", "route", r.Pattern, "status", code, "err", msg)
	} else {
		s.log.Warn("dicomweb: request refused", "route", r.Pattern, "status", code, "err", msg)
	}
	http.Error(w, msg, code)
}

// writeJSON answers a DICOM JSON body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", MediaDICOMJSON)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// baseURL is the services' absolute URL as the client reached them, for
// RetrieveURL and BulkDataURI values.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix
}

type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_dicomweb_requests_total",
			Help: "DICOMweb requests by service (stow, qido, wado) and HTTP status.",
		}, []string{"service", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_dicomweb_request_seconds",
			Help:    "DICOMweb request duration by service.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"service"}),
	}
	return m, metric.Register(reg, m.requests, m.seconds)
}
