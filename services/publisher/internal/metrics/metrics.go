// Package metrics holds the publisher's Prometheus collectors, registered on
// a registry of their own (no global state).
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
)

// Metrics are the publisher's collectors and the registry serving them.
type Metrics struct {
	// Registry holds every collector below plus the Go and process collectors.
	Registry *prometheus.Registry
	// Messages counts messages by RPC method and outcome (gRPC code name;
	// "OK" means stored). A SendBatch counts each item.
	Messages *prometheus.CounterVec
	// Latency is the duration of Send and SendBatch calls by method.
	Latency *prometheus.HistogramVec
	// RedisUp is 1 while the last Redis PING succeeded.
	RedisUp prometheus.Gauge
	// AuthFailures counts calls rejected for a missing or bad key.
	AuthFailures prometheus.Counter
	// RedisMaster is 1 for the address of the Redis master the publisher
	// last connected to (the one the sentinels named), absent for others.
	RedisMaster *prometheus.GaugeVec
	// Failovers counts changes of that address: failovers followed.
	Failovers prometheus.Counter
	// ReplicaTimeouts counts durable sends (calls) whose WAIT confirmed too
	// few replicas in time.
	ReplicaTimeouts prometheus.Counter
	// ScriptReloads counts NOSCRIPT replies: a script sent again to a Redis
	// without it in its cache (a new master after a failover, a restart).
	ScriptReloads prometheus.Counter
	// FlushItems is the number of Sends per coalesced Redis round trip.
	FlushItems prometheus.Histogram
	// Watchers is the number of WatchDeliveries streams (gRPC and SSE) open.
	Watchers prometheus.Gauge
	// DeliveryEvents counts the events sent to watchers.
	DeliveryEvents prometheus.Counter
}

// New creates and registers the collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsmq_publisher_messages_total",
			Help: "Messages handled by the publisher, by RPC method and result code (OK = stored).",
		}, []string{"method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wsmq_publisher_send_duration_seconds",
			Help:    "Duration of Send and SendBatch calls, including Redis round trips.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsmq_publisher_redis_up",
			Help: "1 while Redis answers PING, else 0.",
		}),
		AuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_publisher_auth_failures_total",
			Help: "Calls rejected as UNAUTHENTICATED (missing, malformed or unknown key).",
		}),
		RedisMaster: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wsmq_publisher_redis_master",
			Help: "1 for the address of the Redis master the publisher writes to.",
		}, []string{"addr"}),
		Failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_publisher_redis_failovers_total",
			Help: "Changes of the Redis master address the publisher connects to (failovers followed).",
		}),
		ReplicaTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_publisher_replica_timeouts_total",
			Help: "Durable send calls whose WAIT confirmed fewer than WSMQ_PUBLISHER_MIN_REPLICAS replicas in time.",
		}),
		ScriptReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_publisher_redis_noscript_total",
			Help: "NOSCRIPT replies: Lua scripts sent again to a Redis without them cached (new master, restart).",
		}),
		FlushItems: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wsmq_publisher_send_flush_items",
			Help:    "Unary Sends gathered into one Redis round trip (WSMQ_PUBLISHER_COALESCE_MAX).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000},
		}),
		Watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsmq_publisher_watchers",
			Help: "WatchDeliveries streams open (gRPC and server-sent events).",
		}),
		DeliveryEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_publisher_delivery_events_total",
			Help: "Delivery events sent to WatchDeliveries streams.",
		}),
	}
	m.Registry.MustRegister(m.Messages, m.Latency, m.RedisUp, m.AuthFailures,
		m.RedisMaster, m.Failovers, m.ReplicaTimeouts, m.ScriptReloads, m.FlushItems, m.Watchers, m.DeliveryEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MasterChanged records a new Redis master address (redisconn.MasterWatch).
func (m *Metrics) MasterChanged(old, addr string) {
	m.RedisMaster.Reset()
	m.RedisMaster.WithLabelValues(addr).Set(1)
	if old != "" {
		m.Failovers.Inc()
	}
}

// Observe records one call: its latency and n messages with the given code.
func (m *Metrics) Observe(method string, start time.Time, code codes.Code, n int) {
	m.Latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	if n > 0 {
		m.Messages.WithLabelValues(method, code.String()).Add(float64(n))
	}
}

// Count records n messages of a call with the given code, without latency.
func (m *Metrics) Count(method string, code codes.Code, n int) {
	if n > 0 {
		m.Messages.WithLabelValues(method, code.String()).Add(float64(n))
	}
}

// ObserveFlush records the size of one coalesced flush.
func (m *Metrics) ObserveFlush(items int) { m.FlushItems.Observe(float64(items)) }
