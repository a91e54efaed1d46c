package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the auth service's Prometheus metrics, in a registry of
// their own.
type Metrics struct {
	reg          *prometheus.Registry
	authenticate *prometheus.CounterVec
	verify       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	dbUp         prometheus.Gauge
}

// NewMetrics returns the metrics registered in a fresh registry, with the
// Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		authenticate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsmq_auth_authenticate_total",
			Help: "Authenticate calls by result (ok, invalid_credentials, invalid_argument, unavailable, error).",
		}, []string{"result"}),
		verify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsmq_auth_verify_total",
			Help: "Verify calls by result (ok: valid JWT, refreshed: access token used, invalid_credentials, unavailable, error).",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wsmq_auth_rpc_duration_seconds",
			Help:    "Latency of AuthService RPCs by method and gRPC code.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "code"}),
		dbUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsmq_auth_mongo_up",
			Help: "1 when the last MongoDB ping succeeded.",
		}),
	}
	m.reg.MustRegister(m.authenticate, m.verify, m.latency, m.dbUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetDBUp records whether the last database check passed.
func (m *Metrics) SetDBUp(up bool) {
	if up {
		m.dbUp.Set(1)
	} else {
		m.dbUp.Set(0)
	}
}
