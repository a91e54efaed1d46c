package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
)

// adminPageSize is the ListQueues page size of 'queues ls'.
const adminPageSize = 1000

// queuesViaPublisher runs 'queues ls' or 'queues stats' through the
// publisher's QueueAdminService.
func (c *cli) queuesViaPublisher(ctx context.Context, sub string, names []string, asJSON bool) error {
	tc := insecure.NewCredentials()
	if c.g.grpcTLS {
		tc = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	cc, err := grpc.NewClient(c.g.publisher, grpc.WithTransportCredentials(tc))
	if err != nil {
		return fmt.Errorf("publisher %s: %w", c.g.publisher, err)
	}
	defer func() { _ = cc.Close() }()
	adm := publisherv1.NewQueueAdminServiceClient(cc)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if c.g.publisherAdminKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.g.publisherAdminKey)
	}
	if sub == "ls" || len(names) == 0 {
		seen := map[string]bool{}
		var all []string
		token := ""
		for {
			p, err := adm.ListQueues(ctx, &publisherv1.ListQueuesRequest{PageSize: adminPageSize, PageToken: token})
			if err != nil {
				return c.publisherAdminError(err)
			}
			for _, n := range p.GetQueues() {
				if !seen[n] { // SSCAN may repeat a name across pages
					seen[n] = true
					all = append(all, n)
				}
			}
			if token = p.GetNextPageToken(); token == "" {
				break
			}
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
		a, err := adm.GetQueueAttributes(ctx, &publisherv1.GetQueueAttributesRequest{Queue: n})
		switch {
		case status.Code(err) == codes.NotFound:
			missing = append(missing, fmt.Errorf("no queue %q", n))
			continue
		case err != nil:
			return c.publisherAdminError(err)
		}
		stats = append(stats, queueStats{
			Queue: n, VT: int(a.GetVtSeconds()), Delay: int(a.GetDelaySeconds()), MaxSize: int(a.GetMaxSize()),
			Msgs: a.GetMessages(), Hidden: a.GetInFlight(), TotalSent: a.GetTotalSent(), TotalRecv: a.GetTotalReceived(),
			Created: a.GetCreated(), Modified: a.GetModified(),
		})
	}
	if err := c.printStats(stats, asJSON); err != nil {
		return err
	}
	return errors.Join(missing...)
}

// publisherAdminError explains a QueueAdminService failure.
func (c *cli) publisherAdminError(err error) error {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("the publisher refused the admin key (set WSMQ_PUBLISHER_ADMIN_KEY to one of its WSMQ_PUBLISHER_ADMIN_KEYS): %s", status.Convert(err).Message())
	case codes.Unimplemented:
		return errors.New("the publisher's admin service is off (start it with WSMQ_PUBLISHER_ADMIN_KEYS)")
	}
	return fmt.Errorf("publisher %s: %s", c.g.publisher, grpcError(err))
}
