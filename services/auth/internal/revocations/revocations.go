// Package revocations fans the auth service's revocations out to the
// streams that watch them (WatchRevocations): a hub with one bounded
// channel per watcher.
package revocations

import (
	"sync"
	"time"
)

// Revocation is one ended session, or all of a user's.
type Revocation struct {
	// UserID is the user whose session(s) ended.
	UserID string
	// SessionID is the ended session when one session ended.
	SessionID string
	// AllSessions: every session of UserID started before ValidAfter ended.
	AllSessions bool
	// ValidAfter is when all the sessions ended (with AllSessions).
	ValidAfter time.Time
	// UserDeleted: the user no longer exists.
	UserDeleted bool
}

// DefaultBuffer is how many revocations a watcher may fall behind by
// before the hub drops it (its stream ends; the gateway reconnects and its
// periodic re-verify covers what it missed).
const DefaultBuffer = 4096

// Hub broadcasts revocations to watchers. The zero value is not usable;
// use NewHub.
type Hub struct {
	buffer int

	mu       sync.Mutex
	watchers map[*Watcher]struct{}
	closed   bool
}

// Watcher is one subscription: read C until Done is closed.
type Watcher struct {
	// C carries the revocations published after Watch.
	C    chan Revocation
	done chan struct{}
	once sync.Once
}

// Done is closed when the watcher was dropped (too slow), cancelled, or
// the hub closed; C may still hold revocations then.
func (w *Watcher) Done() <-chan struct{} { return w.done }

func (w *Watcher) end() { w.once.Do(func() { close(w.done) }) }

// NewHub returns a hub whose watchers buffer up to buffer revocations
// (DefaultBuffer when 0).
func NewHub(buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Hub{buffer: buffer, watchers: make(map[*Watcher]struct{})}
}

// Watch subscribes; call Cancel when done.
func (h *Hub) Watch() *Watcher {
	w := &Watcher{C: make(chan Revocation, h.buffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		w.end()
		return w
	}
	h.watchers[w] = struct{}{}
	return w
}

// Cancel unsubscribes w.
func (h *Hub) Cancel(w *Watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
	w.end()
}

// Watchers is the number of subscribed watchers.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// Publish hands r to every watcher without blocking; a watcher whose
// buffer is full is dropped.
func (h *Hub) Publish(r Revocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		select {
		case w.C <- r:
		default:
			delete(h.watchers, w)
			w.end()
		}
	}
}

// Close ends every watcher and refuses new ones (their Done is closed at
// once), so streams end before a graceful stop waits for them.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.watchers {
		delete(h.watchers, w)
		w.end()
	}
}
