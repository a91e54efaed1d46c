// Package metrics holds the gateway's Prometheus instruments, on a registry of
// its own.
package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

// Metrics are the gateway's instruments. A nil *Metrics is not allowed; use
// New.
type Metrics struct {
	Registry *prometheus.Registry

	Connections   prometheus.Gauge
	Subscriptions prometheus.Gauge
	Delivered     prometheus.Counter
	Redelivered   prometheus.Counter
	Acked         prometheus.Counter
	DeadLettered  prometheus.Counter
	Expired       *prometheus.CounterVec // expired messages dropped by receive, by outcome (dead_lettered, deleted)
	Returned      prometheus.Counter
	Rejected      *prometheus.CounterVec // connection attempts refused, by reason
	Latency       prometheus.Histogram   // publish (id time) to frame written
	RedisOps      *prometheus.CounterVec // commands sent to Redis, by command
	RedisErrors   prometheus.Counter
	RedisMemory   prometheus.Gauge     // used_memory/maxmemory, 0 without a limit
	RedisMaster   *prometheus.GaugeVec // 1 for the master address connected to
	Failovers     prometheus.Counter   // changes of that address
	ScriptReloads prometheus.Counter   // NOSCRIPT replies (scripts sent again)
}

// New builds the instruments and registers them with Go and process
// collectors on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsmq_gateway_connections", Help: "Open websocket connections."}),
		Subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsmq_gateway_subscriptions", Help: "Active queue subscriptions."}),
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_delivered_total", Help: "Message frames written to clients."}),
		Redelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_redelivered_total", Help: "Message frames written with rc > 1."}),
		Acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_acked_total", Help: "Messages acknowledged (manual /ack or auto after write)."}),
		DeadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_dead_lettered_total", Help: "Messages moved to a dead-letter queue."}),
		Expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsmq_gateway_expired_total", Help: "Messages whose ttl ran out, dropped by receive without a frame: moved to the dead-letter queue or deleted."},
			[]string{"outcome"}),
		Returned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_returned_total", Help: "Unacked messages returned to their queue (visibility 0) on disconnect or shutdown."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsmq_gateway_rejected_total", Help: "Refused connection attempts, by reason."}, []string{"reason"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wsmq_gateway_delivery_latency_seconds",
			Help:    "Time from send (the RSMQ id's timestamp) to the frame being written.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		RedisOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wsmq_gateway_redis_commands_total", Help: "Commands sent to Redis, by command."}, []string{"cmd"}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_redis_errors_total", Help: "Redis commands that failed (other than nil replies)."}),
		RedisMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsmq_gateway_redis_memory_ratio", Help: "Redis used_memory / maxmemory (0 without a limit); the gateway keeps draining above any mark."}),
		RedisMaster: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wsmq_gateway_redis_master", Help: "1 for the address of the Redis master the gateway connects to."}, []string{"addr"}),
		Failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_redis_failovers_total", Help: "Changes of the Redis master address the gateway connects to (failovers followed)."}),
		ScriptReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wsmq_gateway_redis_noscript_total", Help: "NOSCRIPT replies: Lua scripts sent again to a Redis without them cached (new master, restart)."}),
	}
	m.Registry.MustRegister(m.RedisMaster, m.Failovers, m.ScriptReloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Connections, m.Subscriptions, m.Delivered, m.Redelivered, m.Acked, m.DeadLettered,
		m.Expired, m.Returned, m.Rejected, m.Latency, m.RedisOps, m.RedisErrors, m.RedisMemory,
	)
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

// RedisHook returns a go-redis hook that counts commands and errors.
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.m.RedisOps.WithLabelValues(cmd.Name()).Inc()
		err := next(ctx, cmd)
		if err != nil && err != redis.Nil {
			h.m.RedisErrors.Inc()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.m.RedisOps.WithLabelValues(c.Name()).Inc()
		}
		err := next(ctx, cmds)
		if err != nil && err != redis.Nil {
			h.m.RedisErrors.Inc()
		}
		return err
	}
}
