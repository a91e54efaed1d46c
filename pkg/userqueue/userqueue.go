// Package userqueue keeps the registry of the queues users create through
// the gateway, so that their number can be capped and unused ones pruned.
//
// A user owns the queue named by its id and the secondary queues
// "<id>-<suffix>". For each user with secondary queues, Redis holds a sorted
// set <ns>:wsmq:userqueues:<id>: member = secondary queue name, score = the
// Redis time (ms) at which a gateway last subscribed to it or reported it
// served. The gateway adds a queue when a client subscribes to it (refused
// beyond the cap unless the queue already exists) and refreshes the scores
// of the queues it serves; `wsmqctl queues prune` deletes a user's empty
// secondary queues whose score (or, when unregistered, whose creation time)
// is older than an idle age.
//
// The key sits beside RSMQ's keys but cannot collide with them (queue names
// have no ':'); Node rsmq never reads it. The user's own queue "<id>" is
// never registered, capped or pruned.
package userqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/userid"
)

// ErrLimit is returned by Admit when the user already has as many
// secondary queues as the cap allows.
var ErrLimit = errors.New("userqueue: too many queues for this user")

// staleReservation is how old a registered queue that does not exist must
// be before Admit forgets it: younger ones may be being created right now.
const staleReservation = time.Minute

// markChunk is the most queues marked served in one script call.
const markChunk = 256

// Owner returns the user owning secondary queue q ("<id>-<suffix>" with a
// valid user id and a non-empty suffix); ok is false for any other name,
// the user's own queue "<id>" included.
func Owner(q string) (user string, ok bool) {
	if len(q) < userid.Len+2 || q[userid.Len] != '-' {
		return "", false
	}
	user = q[:userid.Len]
	return user, userid.Valid(user)
}

// Registry runs the registry's scripts on one Redis and RSMQ namespace.
type Registry struct {
	rdb    redis.UniversalClient
	prefix string // "<ns>:"
}

// New returns a Registry for namespace ns ("" is RSMQ's default).
func New(rdb redis.UniversalClient, ns string) *Registry {
	if ns == "" {
		ns = rsmq.DefaultNamespace
	}
	return &Registry{rdb: rdb, prefix: ns + ":"}
}

// Key is the sorted set of user's registered secondary queues.
func (r *Registry) Key(user string) string { return r.prefix + "wsmq:userqueues:" + user }

func (r *Registry) queueHash(q string) string { return r.prefix + q + ":Q" }

// Admit registers secondary queue q for its owner before a subscription
// creates it: it passes when q is registered already or exists (which
// registers it, so existing queues count toward the cap), or when the
// owner has fewer than limit registered queues. Registered queues that no
// longer exist are forgotten before refusing. It returns ErrLimit when
// refused. q must be a secondary queue (see Owner).
//
// One script call, O(1) unless the user is at the cap, then O(limit).
func (r *Registry) Admit(ctx context.Context, q string, limit int) error {
	user, ok := Owner(q)
	if !ok {
		return fmt.Errorf("userqueue: %q is not a user's secondary queue", q)
	}
	n, err := admitScript.Run(ctx, r.rdb, []string{r.Key(user), r.queueHash(q)},
		q, limit, r.prefix, staleReservation.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("userqueue: admit %s: %w", q, err)
	}
	if n == 0 {
		return ErrLimit
	}
	return nil
}

// Count returns how many secondary queues user has registered.
func (r *Registry) Count(ctx context.Context, user string) (int64, error) {
	n, err := r.rdb.ZCard(ctx, r.Key(user)).Result()
	if err != nil {
		return 0, fmt.Errorf("userqueue: count %s: %w", user, err)
	}
	return n, nil
}

// LastServed returns the registered score of q (unix ms), 0 when q is not
// registered.
func (r *Registry) LastServed(ctx context.Context, q string) (int64, error) {
	user, ok := Owner(q)
	if !ok {
		return 0, nil
	}
	s, err := r.rdb.ZScore(ctx, r.Key(user), q).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("userqueue: score of %s: %w", q, err)
	}
	return int64(s), nil
}

// MarkServed sets the score of every registered queue of qs to Redis now.
// Names that are not secondary queues, and queues not registered, are
// skipped (it never grows the registry, so it works while Redis is full).
func (r *Registry) MarkServed(ctx context.Context, qs []string) error {
	keys := make([]string, 0, min(len(qs), markChunk))
	args := make([]any, 0, min(len(qs), markChunk))
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		err := markScript.Run(ctx, r.rdb, keys, args...).Err()
		keys, args = keys[:0], args[:0]
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("userqueue: mark served: %w", err)
		}
		return nil
	}
	for _, q := range qs {
		user, ok := Owner(q)
		if !ok {
			continue
		}
		keys = append(keys, r.Key(user))
		args = append(args, q)
		if len(keys) == markChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// PruneResult is what Prune did with one queue.
type PruneResult string

// Prune results.
const (
	Pruned      PruneResult = "pruned"       // deleted (or, in a dry run, would be)
	HasMessages PruneResult = "has_messages" // kept: messages in it (visible, hidden or delayed)
	Recent      PruneResult = "recent"       // kept: served or created within the idle age
	Missing     PruneResult = "missing"      // no such queue (its registration, if any, was dropped)
	NotUsers    PruneResult = "not_secondary"
)

// Prune deletes secondary queue q when it holds no message and neither a
// gateway (its registry score) nor its creation time shows use within idle,
// all in one atomic script, so a message sent meanwhile is never lost with
// the queue. dryRun reports without deleting.
func (r *Registry) Prune(ctx context.Context, q string, idle time.Duration, dryRun bool) (PruneResult, error) {
	user, ok := Owner(q)
	if !ok {
		return NotUsers, nil
	}
	dry := 0
	if dryRun {
		dry = 1
	}
	res, err := pruneScript.Run(ctx, r.rdb,
		[]string{r.Key(user), r.prefix + "QUEUES", r.prefix + q, r.queueHash(q)},
		q, idle.Milliseconds(), dry).Text()
	if err != nil {
		return "", fmt.Errorf("userqueue: prune %s: %w", q, err)
	}
	return PruneResult(res), nil
}

// Candidates returns the queues Prune should look at for users (all users
// when empty): their registered queues and every queue of the RSMQ queue
// set named like their secondary queues. It scans the set with SSCAN in
// pages (an operator's tool, not a hot path), sorted output not promised.
func (r *Registry) Candidates(ctx context.Context, users []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(q string) {
		if _, ok := Owner(q); ok && !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	patterns := []string{"*"}
	if len(users) > 0 {
		patterns = patterns[:0]
		for _, u := range users {
			if !userid.Valid(u) {
				return nil, fmt.Errorf("userqueue: %q is not a user id (%s)", u, userid.Rule)
			}
			patterns = append(patterns, u+"-*")
			members, err := r.rdb.ZRange(ctx, r.Key(u), 0, -1).Result()
			if err != nil {
				return nil, fmt.Errorf("userqueue: registry of %s: %w", u, err)
			}
			for _, q := range members {
				add(q)
			}
		}
	}
	for _, p := range patterns {
		var cursor uint64
		for {
			names, next, err := r.rdb.SScan(ctx, r.prefix+"QUEUES", cursor, p, 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("userqueue: scan queues: %w", err)
			}
			for _, q := range names {
				add(q)
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return out, nil
}
