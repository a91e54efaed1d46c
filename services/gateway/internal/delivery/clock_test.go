package delivery

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// records is a slog.Handler that keeps every record, for tests of what is
// logged.
type records struct {
	mu  sync.Mutex
	got []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }

func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec.Clone())
	return nil
}

func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r } // the engine adds none
func (r *records) WithGroup(string) slog.Handler      { return r }

// withMessage returns the records logged with msg.
func (r *records) withMessage(msg string) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.got {
		if rec.Message == msg {
			out = append(out, rec)
		}
	}
	return out
}

// attr returns rec's attribute key, and whether it has one.
func attr(rec slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

func TestRateLogSuppressesRepeatsOfAKindAndCountsThem(t *testing.T) {
	const every = time.Hour // no interval passes by itself during the test
	rec := &records{}
	r := &rateLog{log: slog.New(rec), every: every}
	const failing, other = "receive failed; retrying", "sweep failed"

	for range 100 { // a Redis failing every call of 100 subscriptions
		r.Warn(failing, "queue", "q")
	}
	r.Warn(other, "queues", 3)
	first := rec.withMessage(failing)
	if len(first) != 1 {
		t.Fatalf("%d warnings for 100 failures within one interval, want 1", len(first))
	}
	if _, ok := attr(first[0], "suppressed"); ok {
		t.Fatal("the first warning of a kind reports suppressed ones")
	}
	if q, _ := attr(first[0], "queue"); q.String() != "q" || first[0].Level != slog.LevelWarn {
		t.Fatalf("warning %v queue %v, want WARN with the caller's fields", first[0].Level, q)
	}
	if n := len(rec.withMessage(other)); n != 1 {
		t.Fatalf("another kind's warning logged %d times, want 1 (kinds are limited apart)", n)
	}

	// Just inside the interval: still suppressed. Once it has passed (the
	// last warning backdated, not waited for), the next one is logged with
	// the count of those it left out, and the count starts again.
	r.mu.Lock()
	r.kinds[failing].last = time.Now().Add(-every + time.Minute)
	r.mu.Unlock()
	r.Warn(failing, "queue", "q")
	if n := len(rec.withMessage(failing)); n != 1 {
		t.Fatalf("%d warnings before the interval passed, want 1", n)
	}
	r.mu.Lock()
	r.kinds[failing].last = time.Now().Add(-every)
	r.mu.Unlock()
	r.Warn(failing, "queue", "q2")
	got := rec.withMessage(failing)
	if len(got) != 2 {
		t.Fatalf("%d warnings once the interval passed, want 2", len(got))
	}
	if n, ok := attr(got[1], "suppressed"); !ok || n.Int64() != 100 {
		t.Fatalf("second warning suppressed=%v (present %v), want the 100 left out", n, ok)
	}
	if q, _ := attr(got[1], "queue"); q.String() != "q2" {
		t.Fatalf("second warning has queue %v, want its own call's fields", q)
	}
	r.Warn(failing, "queue", "q")
	if n := len(rec.withMessage(failing)); n != 2 {
		t.Fatalf("%d warnings right after the second, want 2", n)
	}
	if n := r.kinds[failing].suppressed; n != 1 {
		t.Fatalf("suppressed count %d after the second warning and one more, want 1 (reset when reported)", n)
	}
}
