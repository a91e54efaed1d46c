package testenv

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is an in-memory output that one goroutine (a logger, a child
// process's copier) may write while another reads it. The zero value is
// ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p; it never fails.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dataRaceReport starts each report of Go's race detector.
const dataRaceReport = "WARNING: DATA RACE"

// CheckNoDataRace fails t when output, what the process name wrote, holds a
// report of the race detector: a race in a child process fails the test
// that started it, even though the process itself carries on.
func CheckNoDataRace(t testing.TB, name, output string) {
	t.Helper()
	if strings.Contains(output, dataRaceReport) {
		t.Errorf("testenv: %s reported a data race (%q in its output)", name, dataRaceReport)
	}
}

// pollInterval is how often Eventually checks its condition.
const pollInterval = 10 * time.Millisecond

// Eventually checks cond every 10 ms until it holds, and fails the test
// (naming what it waited for) when it does not hold within d. It is for
// state that can only be observed by asking again (a queue's length, a
// process's output); an event that can be received should be awaited on
// its channel instead.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pollInterval) // polling interval, not synchronisation
	}
}
