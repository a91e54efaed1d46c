package serve

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Probe checks one dependency (Redis, MongoDB) at an interval and keeps
// its state for readiness, the gRPC health service and a gauge.
type Probe struct {
	// Name names the dependency in /readyz and logs ("redis", "mongodb").
	Name string
	// Check answers nil while the dependency is usable.
	Check func(ctx context.Context) error
	// Interval between checks; 0 means a second.
	Interval time.Duration
	// Health, when not nil, gets SERVING/NOT_SERVING for Services
	// ("" is the server as a whole).
	Health   *health.Server
	Services []string
	// OnChange, when not nil, is called with every new state (and the first).
	OnChange func(up bool)
	Log      *slog.Logger

	up atomic.Bool
}

// Up reports whether the last check passed.
func (p *Probe) Up() bool { return p.up.Load() }

// Run checks until ctx ends. Each check's deadline is the interval (at
// least a second), so a hung dependency turns "down" within about that.
func (p *Probe) Run(ctx context.Context) {
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	timeout := max(interval, time.Second)
	first := true
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := p.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		up := err == nil
		if first || up != p.up.Load() {
			p.set(up, err, first)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Probe) set(up bool, err error, first bool) {
	p.up.Store(up)
	if p.Health != nil {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if up {
			st = healthpb.HealthCheckResponse_SERVING
		}
		for _, s := range p.Services {
			p.Health.SetServingStatus(s, st)
		}
	}
	if p.OnChange != nil {
		p.OnChange(up)
	}
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	switch {
	case up:
		log.Info(p.Name+" reachable: ready", "dependency", p.Name)
	case first:
		log.Warn(p.Name+" unreachable at start: not ready until it answers", "dependency", p.Name, "err", err)
	default:
		log.Warn(p.Name+" unreachable: not ready", "dependency", p.Name, "err", err)
	}
}
