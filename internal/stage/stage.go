// Package stage measures how long after a study's last instance arrived
// it passes each stage of the pipeline: received → complete → queued →
// inferred → delivered. One histogram, labelled by stage (and model where
// one is known), so a dashboard reads every stage's latency off the same
// clock.
package stage

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/internal/metric"
)

// Stages, the values of the stage label.
const (
	Complete  = "complete"  // the study's quiet period ended (or its association was released)
	Queued    = "queued"    // an inference job was created for it
	Inferred  = "inferred"  // the job's results were written to the outbox
	Delivered = "delivered" // a result reached its destination
)

// Latency is radgate_pipeline_latency_seconds. Its zero value (nil
// histogram) observes nothing, for tests that do not scrape.
type Latency struct {
	h *prometheus.HistogramVec
}

// NewLatency registers the histogram on reg (nil: not registered).
func NewLatency(reg prometheus.Registerer) (*Latency, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "radgate_pipeline_latency_seconds",
		Help: "Time from the last instance of a study arriving until it passed a stage (complete, queued, inferred, delivered); the delivered stage is the end-to-end latency.",
		// From a released association (seconds) to a PACS down for hours.
		Buckets: []float64{.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 900, 3600, 14400},
	}, []string{"stage", "model"})
	return &Latency{h: h}, metric.Register(reg, h)
}

// Observe records that a study whose last instance arrived at since
// passed stage now; model is "" before routing chose one.
func (l *Latency) Observe(stage, model string, since time.Time) {
	if l == nil || l.h == nil || since.IsZero() {
		return
	}
	l.h.WithLabelValues(stage, model).Observe(time.Since(since).Seconds())
}
