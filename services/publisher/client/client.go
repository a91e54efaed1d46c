// Package client is the Go client of the wsmq publisher: a thin typed wrapper
// over the generated gRPC client that sends the bearer key with every call
// and retries calls the publisher answered with UNAVAILABLE (Redis down).
//
// Retries make delivery at-least-once: a Send whose reply was lost after
// the message was stored may store it again.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
)

// Retry is the retry policy for UNAVAILABLE answers. Attempt n (from 1)
// waits a random time in [0, min(MaxBackoff, InitialBackoff*2^(n-1))]
// (exponential backoff with full jitter); the caller's ctx bounds it all.
type Retry struct {
	// MaxAttempts counts the first call; 1 disables retries. Default 5.
	MaxAttempts int
	// InitialBackoff is the backoff ceiling after the first failure. Default 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the backoff ceiling. Default 2s.
	MaxBackoff time.Duration
}

// Options configure Dial.
type Options struct {
	// Key is sent as `authorization: Bearer <Key>` on every call; "" sends
	// nothing (a dev-mode publisher).
	Key string
	// TLS configures the TLS connection; nil with Insecure false means TLS
	// with the system roots.
	TLS *tls.Config
	// Insecure uses plaintext (loopback, dev). It may not be combined with TLS.
	Insecure bool
	// Retry is the policy for UNAVAILABLE; zero fields take the defaults.
	Retry Retry
	// DialOptions are appended to the gRPC dial options.
	DialOptions []grpc.DialOption
}

// Client sends messages to a publisher. It is safe for concurrent use.
type Client struct {
	cc    *grpc.ClientConn
	api   publisherv1.PublisherServiceClient
	retry Retry
}

// Dial returns a Client for the publisher at addr (host:port). The
// connection is made lazily on the first call and re-made after failures,
// so Dial succeeds while the publisher is down; ctx is only checked.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Insecure && opts.TLS != nil {
		return nil, errors.New("publisher client: Insecure and TLS are exclusive")
	}
	var dopts []grpc.DialOption
	if opts.Insecure {
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		tc := opts.TLS
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	}
	if opts.Key != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearer{key: opts.Key, secure: !opts.Insecure}))
	}
	dopts = append(dopts, opts.DialOptions...)
	cc, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("publisher client: %w", err)
	}
	r := opts.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 5
	}
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = 100 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 2 * time.Second
	}
	return &Client{cc: cc, api: publisherv1.NewPublisherServiceClient(cc), retry: r}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// Send puts message on queue and returns its RSMQ id. delay hides it for
// that long, rounded up to whole seconds; 0 means the queue's default
// delay. Errors are gRPC status errors (status.Code(err)): InvalidArgument
// for a bad queue name, message or delay, Unauthenticated for a bad key,
// Unavailable when retries ran out.
func (c *Client) Send(ctx context.Context, queue, message string, delay time.Duration) (string, error) {
	return c.SendItem(ctx, Item{Queue: queue, Message: message, Delay: delay})
}

// SendItem is Send with every option of an Item, e.g. a TTL.
func (c *Client) SendItem(ctx context.Context, it Item) (string, error) {
	req := &publisherv1.SendRequest{Queue: it.Queue, Message: it.Message, DelaySeconds: seconds(it.Delay), TtlSeconds: seconds(it.TTL)}
	var resp *publisherv1.SendResponse
	err := c.do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.api.Send(ctx, req)
		return err
	})
	if err != nil {
		return "", err
	}
	return resp.GetId(), nil
}

// GetStatus returns the delivery status of message id of queue (see the
// PublisherService.GetStatus contract).
func (c *Client) GetStatus(ctx context.Context, queue, id string) (*publisherv1.GetStatusResponse, error) {
	var resp *publisherv1.GetStatusResponse
	err := c.do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.api.GetStatus(ctx, &publisherv1.GetStatusRequest{Queue: queue, Id: id})
		return err
	})
	return resp, err
}

// Item is one message of SendBatch.
type Item struct {
	Queue   string
	Message string
	Delay   time.Duration // as in Send
	// TTL is how long after its send the message may still be delivered,
	// rounded up to whole seconds; 0 means the publisher's default
	// (WSMQ_QUEUE_TTL). An expired message is never delivered.
	TTL time.Duration
}

// Result is the outcome of one Item: its id, or Err, a gRPC status error
// (status.Code(Err) is InvalidArgument for a bad item, Unavailable when
// Redis failed for it).
type Result struct {
	ID  string
	Err error
}

// SendBatch puts many messages in one call and returns one Result per item,
// in order. The returned error is for the call as a whole (bad key, too many
// items, Redis down after retries); then no results are returned.
// Items that fail on their own are not retried.
func (c *Client) SendBatch(ctx context.Context, items []Item) ([]Result, error) {
	req := &publisherv1.SendBatchRequest{Items: make([]*publisherv1.SendRequest, len(items))}
	for i, it := range items {
		req.Items[i] = &publisherv1.SendRequest{Queue: it.Queue, Message: it.Message, DelaySeconds: seconds(it.Delay), TtlSeconds: seconds(it.TTL)}
	}
	var resp *publisherv1.SendBatchResponse
	err := c.do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.api.SendBatch(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(items) {
		return nil, status.Errorf(codes.Internal, "publisher answered %d results for %d items", len(resp.GetResults()), len(items))
	}
	out := make([]Result, len(items))
	for i, r := range resp.GetResults() {
		if r.GetCode() != int32(codes.OK) {
			out[i].Err = status.Error(codes.Code(r.GetCode()), r.GetError())
			continue
		}
		out[i].ID = r.GetId()
	}
	return out, nil
}

// do runs call, retrying UNAVAILABLE with backoff while attempts and ctx last.
func (c *Client) do(ctx context.Context, call func(context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = call(ctx)
		if status.Code(err) != codes.Unavailable || attempt >= c.retry.MaxAttempts {
			return err
		}
		t := time.NewTimer(c.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return err // the last answer says more than "context canceled"
		case <-t.C:
		}
	}
}

// backoff is the wait after failed attempt n (from 1): full jitter under an
// exponentially growing ceiling.
func (c *Client) backoff(n int) time.Duration {
	ceil := float64(c.retry.InitialBackoff) * math.Pow(2, float64(n-1))
	ceil = min(ceil, float64(c.retry.MaxBackoff))
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// seconds rounds a delay up to whole seconds.
func seconds(d time.Duration) int64 {
	if d < 0 {
		return -int64((-d + time.Second - 1) / time.Second) // stays negative: the server names the field
	}
	return int64((d + time.Second - 1) / time.Second)
}

// bearer is the per-call credential carrying the key.
type bearer struct {
	key    string
	secure bool
}

// GetRequestMetadata returns the authorization header.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

// RequireTransportSecurity is false only for an Insecure client, so a key is
// never sent in clear text by accident.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
