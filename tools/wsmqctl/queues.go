package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

const queuesHelp = `Usage: wsmqctl queues ls                     list the RSMQ queues, sorted
       wsmqctl queues stats [--json] [QUEUE...] attributes and counts (all queues by default)

Reads the RSMQ keys in Redis directly (--redis / WSMQ_REDIS_URL, key
namespace --ns / WSMQ_RSMQ_NS, default "rsmq"). stats columns: vt and delay
in seconds, maxsize in UTF-16 units (-1: unlimited), msgs in the queue,
hidden (of msgs, not visible now: delayed or in flight), totalsent and
totalrecv since the queue was created. A missing queue exits 1.`

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
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want a subcommand: ls | stats (run 'wsmqctl queues --help')")
	}
	sub, names := pos[0], pos[1:]
	switch sub {
	case "ls":
		if err := fs.nargs(names, 0, "no arguments after queues ls"); err != nil {
			return err
		}
	case "stats":
	default:
		return usagef("unknown queues subcommand %q: want ls | stats", sub)
	}
	opts, err := redis.ParseURL(c.g.redisURL)
	if err != nil {
		return usagef("--redis / WSMQ_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	defer func() { _ = rdb.Close() }()
	q := rsmq.New(rdb, rsmq.Options{Namespace: c.g.ns})
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()

	if sub == "ls" || len(names) == 0 {
		all, err := q.ListQueues(ctx)
		if err != nil {
			return fmt.Errorf("redis %s: %w", opts.Addr, err)
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
			return fmt.Errorf("redis %s: %w", opts.Addr, err)
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
