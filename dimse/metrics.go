package dimse

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the SCP's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	requested *prometheus.CounterVec
	ended     *prometheus.CounterVec
	active    prometheus.Gauge
	messages  *prometheus.CounterVec
	bytes     prometheus.Counter
	store     prometheus.Histogram
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_dimse_associations_total",
			Help: "A-ASSOCIATE requests by outcome (accepted, rejected).",
		}, []string{"result"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_dimse_associations_ended_total",
			Help: "Associations ended, by reason (released, peer_aborted, artim_expired, malformed_pdu, ...).",
		}, []string{"reason"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radgate_dimse_associations_active",
			Help: "Established associations now open.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_dimse_messages_total",
			Help: "DIMSE requests served, by command and status class.",
		}, []string{"command", "status"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radgate_dimse_received_bytes_total",
			Help: "Data set bytes received in C-STORE requests.",
		}),
		store: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "radgate_dimse_cstore_seconds",
			Help:    "Time from the C-STORE command to its response (receive + durable store).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requested, m.ended, m.active, m.messages, m.bytes, m.store)
	}
	for _, r := range endReasonNames {
		m.ended.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) associationRequested(result string) {
	if m != nil {
		m.requested.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) associationEnded(r EndReason) {
	if m != nil {
		m.ended.WithLabelValues(r.String()).Inc()
	}
}

func (m *Metrics) activeDelta(d float64) {
	if m != nil {
		m.active.Add(d)
	}
}

func (m *Metrics) message(command, status string, bytes int64) {
	if m != nil {
		m.messages.WithLabelValues(command, status).Inc()
		m.bytes.Add(float64(bytes))
	}
}

func (m *Metrics) observeStore(d time.Duration) {
	if m != nil {
		m.store.Observe(d.Seconds())
	}
}
