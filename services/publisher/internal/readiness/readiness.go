// Package readiness tracks whether Redis answers, and publishes it to the
// gRPC health service, the /readyz endpoint and a gauge.
package readiness

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Pinger is what the tracker needs from Redis.
type Pinger func(ctx context.Context) error

// Tracker pings Redis at an interval and reports SERVING while it answers.
type Tracker struct {
	ping     Pinger
	interval time.Duration
	health   *health.Server
	services []string
	onChange func(up bool)
	log      *slog.Logger
	ready    atomic.Bool
}

// New returns a Tracker that sets the status of services ("" is the server
// as a whole) on hs. onChange, when not nil, is called with each new state
// (and the first).
func New(ping Pinger, interval time.Duration, hs *health.Server, services []string, onChange func(up bool), log *slog.Logger) *Tracker {
	return &Tracker{ping: ping, interval: interval, health: hs, services: services, onChange: onChange, log: log}
}

// Ready reports whether the last ping succeeded.
func (t *Tracker) Ready() bool { return t.ready.Load() }

// Run pings until ctx ends. Each ping has the interval as its deadline (at
// least a second), so a hung Redis turns NOT_SERVING within about that time.
func (t *Tracker) Run(ctx context.Context) {
	timeout := max(t.interval, time.Second)
	first := true
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := t.ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		up := err == nil
		if first || up != t.ready.Load() {
			t.set(up, err, first)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *Tracker) set(up bool, err error, first bool) {
	t.ready.Store(up)
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if up {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, s := range t.services {
		t.health.SetServingStatus(s, st)
	}
	if t.onChange != nil {
		t.onChange(up)
	}
	switch {
	case up:
		t.log.Info("redis reachable: serving")
	case first:
		t.log.Warn("redis unreachable at start: not serving until it answers", "err", err)
	default:
		t.log.Warn("redis unreachable: not serving", "err", err)
	}
}
