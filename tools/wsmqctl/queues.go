package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/userid"
	"github.com/wsmq/wsmq/pkg/userqueue"
)

const queuesHelp = `Usage: wsmqctl queues ls                     list the RSMQ queues, sorted
       wsmqctl queues stats [--json] [QUEUE...] attributes and counts (all queues by default)
       wsmqctl queues prune [--idle D] [--dry-run] [USERID...]
                                            delete users' empty, unused secondary queues

Reads the RSMQ keys in Redis directly (--redis / WSMQ_REDIS_URL, key
namespace --ns / WSMQ_RSMQ_NS, default "rsmq"), unless ls and stats are
sent to the publisher's QueueAdminService (at --publisher) with --via-publisher
or WSMQ_PUBLISHER_ADMIN_KEY set (the admin key; not needed in dev mode):
then ls pages through ListQueues (SSCAN, never a full read) and stats calls
GetQueueAttributes. stats columns: vt and delay
in seconds, maxsize in UTF-16 units (-1: unlimited), msgs in the queue,
hidden (of msgs, not visible now: delayed or in flight), totalsent and
totalrecv since the queue was created. A missing queue exits 1.

prune looks at the secondary queues "<userId>-<suffix>" of the given users
(all users by default) and deletes each one that holds no message (visible,
in flight or delayed) and was last used longer than --idle ago (default 24h,
at least 1m). "Used" is the last time a gateway subscribed to it or reported
it served (every gateway refreshes its served queues each
WSMQ_SERVED_MARK_INTERVAL, default 1m), or its creation time when no gateway
ever did. The check and the delete are one atomic Redis script, so a message
sent meanwhile keeps its queue. A user's own queue "<userId>" is never
pruned. One line per pruned queue; --dry-run deletes nothing.`

// Limits of queues prune.
const (
	defaultPruneIdle = 24 * time.Hour
	minPruneIdle     = time.Minute
)

// queueStats is one queue's line of `queues stats --json`.
type queueStats struct {
	Queue     string `json:"queue"`
	VT        int    `json:"vt"`
	Delay     int    `json:"delay"`
	MaxSize   int    `json:"maxsize"`
	Msgs      int64  `json:"msgs"`
	Hidden    int64  `json:"hidden"`
	TotalSent int64  `json:"totalsent"`
	TotalRecv int64  `json:"totalrecv"`
	Created   int64  `json:"created"`
	Modified  int64  `json:"modified"`
}

func (c *cli) queues(ctx context.Context, args []string) error {
	fs := c.newFlagSet("queues", queuesHelp)
	asJSON := fs.Bool("json", false, "stats: print one JSON object per queue")
	idle := fs.Duration("idle", defaultPruneIdle, "prune: delete only queues unused for this long")
	dryRun := fs.Bool("dry-run", false, "prune: print what would be deleted, delete nothing")
	viaPublisher := fs.Bool("via-publisher", c.g.publisherAdminKey != "", "ls, stats: ask the publisher's QueueAdminService (default when WSMQ_PUBLISHER_ADMIN_KEY is set)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want a subcommand: ls | stats | prune (run 'wsmqctl queues --help')")
	}
	sub, names := pos[0], pos[1:]
	switch sub {
	case "ls":
		if err := fs.nargs(names, 0, "no arguments after queues ls"); err != nil {
			return err
		}
	case "stats":
	case "prune":
		if *idle < minPruneIdle {
			return usagef("--idle %s is shorter than %s: a served queue could be deleted", *idle, minPruneIdle)
		}
		for _, u := range names {
			if !userid.Valid(u) {
				return usagef("%q is not a user id (%s)", u, userid.Rule)
			}
		}
	default:
		return usagef("unknown queues subcommand %q: want ls | stats | prune", sub)
	}
	if *viaPublisher && sub != "prune" {
		return c.queuesViaPublisher(ctx, sub, names, *asJSON)
	}
	target, err := redisconn.ParseURL(c.g.redisURL)
	if err != nil {
		return usagef("--redis / WSMQ_REDIS_URL: %v", err)
	}
	rdb := target.Client(redisconn.Tuning{})
	defer func() { _ = rdb.Close() }()
	q := rsmq.New(rdb, rsmq.Options{Namespace: c.g.ns})
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if sub == "prune" {
		return c.prune(ctx, userqueue.New(rdb, c.g.ns), names, *idle, *dryRun)
	}

	if sub == "ls" || len(names) == 0 {
		all, err := q.ListQueues(ctx)
		if err != nil {
			return fmt.Errorf("redis %s: %w", target.Addr(), err)
		}
		slices.Sort(all)
		if sub == "ls" {
			for _, n := range all {
				_, _ = fmt.Fprintln(c.stdout, n)
			}
			return nil
		}
		names = all
	}

	var stats []queueStats
	var missing []error
	for _, n := range names {
		a, err := q.GetQueueAttributes(ctx, n)
		switch {
		case errors.Is(err, rsmq.ErrQueueNotFound):
			missing = append(missing, fmt.Errorf("no queue %q", n))
			continue
		case err != nil:
			return fmt.Errorf("redis %s: %w", target.Addr(), err)
		}
		stats = append(stats, queueStats{
			Queue: n, VT: a.VT, Delay: a.Delay, MaxSize: a.MaxSize, Msgs: a.Msgs, Hidden: a.HiddenMsgs,
			TotalSent: a.TotalSent, TotalRecv: a.TotalRecv, Created: a.Created, Modified: a.Modified,
		})
	}
	if err := c.printStats(stats, *asJSON); err != nil {
		return err
	}
	return errors.Join(missing...)
}

// prune deletes the empty unused secondary queues of users (all when
// empty) and prints one line per queue it deleted.
func (c *cli) prune(ctx context.Context, reg *userqueue.Registry, users []string, idle time.Duration, dryRun bool) error {
	queues, err := reg.Candidates(ctx, users)
	if err != nil {
		return err
	}
	slices.Sort(queues)
	verb := "pruned"
	if dryRun {
		verb = "would prune"
	}
	for _, q := range queues {
		res, err := reg.Prune(ctx, q, idle, dryRun)
		if err != nil {
			return err
		}
		if res == userqueue.Pruned {
			_, _ = fmt.Fprintln(c.stdout, verb, q)
		}
	}
	return nil
}

func (c *cli) printStats(stats []queueStats, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, s := range stats {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "QUEUE\tVT\tDELAY\tMAXSIZE\tMSGS\tHIDDEN\tTOTALSENT\tTOTALRECV\t")
	for _, s := range stats {
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Queue, s.VT, s.Delay, s.MaxSize, s.Msgs, s.Hidden, s.TotalSent, s.TotalRecv)
	}
	return tw.Flush()
}
