package store

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus collectors. A nil registerer gives
// working collectors that nobody scrapes.
type metrics struct {
	ingestSeconds prometheus.Histogram
	instances     *prometheus.CounterVec // {outcome}
	bytes         prometheus.Counter
	fsyncSeconds  prometheus.Histogram
	commitSeconds prometheus.Histogram
	errors        *prometheus.CounterVec // {reason}

	purgedStudies, purgedInstances prometheus.Counter
	held                           prometheus.Gauge
}

// Error reasons, the values of radgate_store_errors_total{reason}.
const (
	reasonOutOfResources = "out_of_resources"
	reasonTooLarge       = "too_large"
	reasonInvalid        = "invalid_dataset"
	reasonDuplicate      = "duplicate_rejected"
	reasonTransferSyntax = "unknown_transfer_syntax"
	reasonRead           = "read" // the sender's stream failed (association aborted)
	reasonCanceled       = "canceled"
	reasonClosed         = "closed"
	reasonIO             = "io" // our disk or index failed
)

// latencyBuckets span a page-cache write (100 µs) to a stalled disk (10 s).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// newMetrics makes the collectors; pending reports the records
// acknowledged but not yet indexed.
func newMetrics(reg prometheus.Registerer, pending func() float64) (*metrics, error) {
	m := &metrics{
		ingestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "radgate_store_ingest_seconds",
			Help:    "Time from the start of Ingest until the instance is durable and indexed (or failed).",
			Buckets: latencyBuckets,
		}),
		instances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_store_instances_total",
			Help: "Instances ingested successfully, by outcome (stored, duplicate_same, duplicate_kept, replaced).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radgate_store_bytes_total",
			Help: "Bytes of Part 10 files made durable.",
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "radgate_store_fsync_seconds",
			Help:    "Duration of each log record's fdatasync (what an acknowledgement waits for).",
			Buckets: latencyBuckets,
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "radgate_store_index_commit_seconds",
			Help:    "Duration of each index transaction (one batch of acknowledged instances).",
			Buckets: latencyBuckets,
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_store_errors_total",
			Help: "Failed ingests, by reason.",
		}, []string{"reason"}),
		purgedStudies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radgate_store_purged_studies_total",
			Help: "Studies purged (retention, or an administrator's request).",
		}),
		purgedInstances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radgate_store_purged_instances_total",
			Help: "Instances purged with their studies; their log records erased.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radgate_store_retention_held_studies",
			Help: "Studies due for purge by retention but kept, because a delivery of their results gave up (as of the last retention pass).",
		}),
	}
	for _, o := range outcomeNames {
		m.instances.WithLabelValues(o)
	}
	for _, r := range []string{reasonOutOfResources, reasonTooLarge, reasonInvalid, reasonDuplicate,
		reasonTransferSyntax, reasonRead, reasonCanceled, reasonClosed, reasonIO} {
		m.errors.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "radgate_store_index_pending",
		Help: "Instances acknowledged (durable in the log) and not yet in the index.",
	}, pending)
	for _, c := range []prometheus.Collector{m.ingestSeconds, m.instances, m.bytes, m.fsyncSeconds, m.commitSeconds, m.errors, queue,
		m.purgedStudies, m.purgedInstances, m.held} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("store: metrics already registered (one Store per registry): %w", err)
			}
			return nil, fmt.Errorf("store: register metrics: %w", err)
		}
	}
	return m, nil
}
