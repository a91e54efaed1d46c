// Package throttle is the auth service's own guard on Authenticate: a
// token bucket per caller address and an exponential back-off per user
// name after failed logins. A refused attempt costs a map lookup, never a
// bcrypt comparison.
package throttle

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Options.
const (
	// DefaultRatePerIP is the logins per second one address may start:
	// the client address a gateway names with its credential, else the
	// caller's (a gateway without the credential counts as one address,
	// so this is sized for a gateway, not a person).
	DefaultRatePerIP = 100
	// DefaultFreeFailures is how many failures in a row a name gets
	// before the back-off starts.
	DefaultFreeFailures = 3
	// DefaultBackoff is the first wait after the free failures; it
	// doubles with every further failure.
	DefaultBackoff = time.Second
	// DefaultMaxBackoff caps the wait.
	DefaultMaxBackoff = 5 * time.Minute
	// maxEntries bounds each map; beyond it, idle entries are swept and,
	// if none is idle, new addresses or names are not tracked (allowed)
	// rather than growing without bound.
	maxEntries = 100_000
)

// Options configures a Throttle. Zero values mean the defaults.
type Options struct {
	RatePerIP    float64       // logins per second per peer address (burst twice that)
	FreeFailures int           // failures before the back-off starts
	Backoff      time.Duration // first wait
	MaxBackoff   time.Duration // longest wait
	Now          func() time.Time
}

// Throttle decides whether a login attempt may run. Safe for concurrent
// use.
type Throttle struct {
	o Options

	mu      sync.Mutex
	ips     map[string]*rate.Limiter
	names   map[string]*nameState
	swept   time.Time
	burstIP int
}

type nameState struct {
	failures int
	until    time.Time // attempts refused before this
	last     time.Time // last failure
}

// New returns a Throttle.
func New(o Options) *Throttle {
	if o.RatePerIP <= 0 {
		o.RatePerIP = DefaultRatePerIP
	}
	if o.FreeFailures <= 0 {
		o.FreeFailures = DefaultFreeFailures
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Throttle{o: o, ips: make(map[string]*rate.Limiter), names: make(map[string]*nameState),
		burstIP: max(1, int(2*o.RatePerIP))}
}

// Allow reports whether a login for name from ip may run now; when not,
// it returns how long until it may. It takes a token from ip's bucket.
func (t *Throttle) Allow(ip, name string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.o.Now()
	t.sweep(now)
	if st := t.names[name]; st != nil && now.Before(st.until) {
		return false, st.until.Sub(now)
	}
	b := t.ips[ip]
	if b == nil {
		if len(t.ips) >= maxEntries {
			return true, 0
		}
		b = rate.NewLimiter(rate.Limit(t.o.RatePerIP), t.burstIP)
		t.ips[ip] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Failure records a failed login for name: after FreeFailures in a row,
// the name waits Backoff, doubling per further failure up to MaxBackoff.
// Other names are not affected.
func (t *Throttle) Failure(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.o.Now()
	st := t.names[name]
	if st == nil {
		if len(t.names) >= maxEntries {
			return
		}
		st = &nameState{}
		t.names[name] = st
	}
	st.failures++
	st.last = now
	if over := st.failures - t.o.FreeFailures; over >= 0 {
		d := t.o.Backoff << min(over, 30)
		if d <= 0 || d > t.o.MaxBackoff {
			d = t.o.MaxBackoff
		}
		st.until = now.Add(d)
	}
}

// Success forgets name's failures.
func (t *Throttle) Success(name string) {
	t.mu.Lock()
	delete(t.names, name)
	t.mu.Unlock()
}

// sweep drops, at most once a minute, full buckets and names whose last
// failure is older than MaxBackoff (their streak is forgiven).
func (t *Throttle) sweep(now time.Time) {
	if now.Sub(t.swept) < time.Minute {
		return
	}
	t.swept = now
	for k, b := range t.ips {
		if b.TokensAt(now) >= float64(t.burstIP) {
			delete(t.ips, k)
		}
	}
	for k, st := range t.names {
		if now.Sub(st.last) > t.o.MaxBackoff && !now.Before(st.until) {
			delete(t.names, k)
		}
	}
}
