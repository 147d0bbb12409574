package inference

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the inference engine's Prometheus metrics (Triton's
// statistics split: queue time apart from compute time). A nil *Metrics
// records nothing.
type Metrics struct {
	depth    *prometheus.GaugeVec
	wait     *prometheus.HistogramVec
	compute  *prometheus.HistogramVec
	batch    *prometheus.HistogramVec
	runs     *prometheus.CounterVec
	rejects  *prometheus.CounterVec
	requests *prometheus.CounterVec
	stage    *prometheus.HistogramVec
	remote   *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "radgate_inference_queue_items",
			Help: "Items (frames) waiting, by model and priority.",
		}, []string{"model", "priority"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_inference_queue_seconds",
			Help:    "Time a request waited in the queue before its batch ran, by model and priority.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"model", "priority"}),
		compute: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_inference_compute_seconds",
			Help:    "Time of one batch's Run, by model.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"model"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_inference_batch_items",
			Help:    "Items per batch run, by model.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}, []string{"model"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_inference_batches_total",
			Help: "Batches run, by model and result (ok, error).",
		}, []string{"model", "result"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_inference_rejected_total",
			Help: "Requests refused before queueing, by model and reason (queue_full, too_large, no_model, bad_request, stopped).",
		}, []string{"model", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_inference_studies_total",
			Help: "Instances or series run through a model, by model and result (ok, error).",
		}, []string{"model", "result"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_inference_stage_seconds",
			Help:    "Time per stage of a model run over instances: decode, preprocess, queue, inference.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"model", "stage"}),
		remote: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "radgate_model_remote_up",
			Help: "1 while a loaded remote model's KServe v2 endpoint answers the periodic ModelReady check ready, 0 while it does not, by model.",
		}, []string{"model"}),
	}
	if reg != nil {
		reg.MustRegister(m.depth, m.wait, m.compute, m.batch, m.runs, m.rejects, m.requests, m.stage, m.remote)
	}
	return m
}

func (m *Metrics) queued(model string, p Priority, n int) {
	if m != nil {
		m.depth.WithLabelValues(model, p.String()).Add(float64(n))
	}
}

func (m *Metrics) dequeued(model string, p Priority, n int) {
	if m != nil {
		m.depth.WithLabelValues(model, p.String()).Sub(float64(n))
	}
}

func (m *Metrics) waited(model string, p Priority, d time.Duration) {
	if m != nil {
		m.wait.WithLabelValues(model, p.String()).Observe(d.Seconds())
	}
}

// remoteUp sets a remote model's gauge: 1 up, 0 down.
func (m *Metrics) remoteUp(model string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.remote.WithLabelValues(model).Set(v)
}

// remoteGone drops an unloaded remote model's gauge.
func (m *Metrics) remoteGone(model string) {
	if m != nil {
		m.remote.DeleteLabelValues(model)
	}
}

func (m *Metrics) ran(model string, n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.runs.WithLabelValues(model, res).Inc()
	m.compute.WithLabelValues(model).Observe(d.Seconds())
	m.batch.WithLabelValues(model).Observe(float64(n))
}

func (m *Metrics) rejected(model string, err error) {
	if m == nil {
		return
	}
	reason := "bad_request"
	switch {
	case errors.Is(err, ErrQueueFull):
		reason = "queue_full"
	case errors.Is(err, ErrBatchTooLarge):
		reason = "too_large"
	case errors.Is(err, ErrNoModel):
		reason = "no_model"
	case errors.Is(err, ErrStopped):
		reason = "stopped"
	}
	m.rejects.WithLabelValues(model, reason).Inc()
}

func (m *Metrics) studied(model string, t StageTimes, err error) {
	if m == nil {
		return
	}
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.requests.WithLabelValues(model, res).Inc()
	if err == nil {
		m.stage.WithLabelValues(model, "decode").Observe(t.Decode.Seconds())
		m.stage.WithLabelValues(model, "preprocess").Observe(t.Preprocess.Seconds())
		m.stage.WithLabelValues(model, "queue").Observe(t.Queue.Seconds())
		m.stage.WithLabelValues(model, "inference").Observe(t.Inference.Seconds())
	}
}
