package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/wsmqctl/internal/batchfile"
)

// callTimeout bounds one gRPC call (retries included).
const callTimeout = 30 * time.Second

const sendHelp = `Usage: wsmqctl send [--delay D] QUEUE MESSAGE
       wsmqctl send --file FILE

Sends through the publisher's gRPC API. With QUEUE and MESSAGE it calls Send
and prints the message id (MESSAGE "-" reads the message from stdin).

With --file it reads one message per line and calls SendBatch in chunks of
1000. A line is a JSON object {"queue","message","delay_seconds"} or
"QUEUE<TAB>MESSAGE"; blank lines and lines starting with # are skipped.
"--file -" reads stdin. It prints one JSON line per message line:
{"line":N,"queue":Q,"id":ID} or {"line":N,"error":...}, and exits 1 when any
line failed (the others are still sent).

The publisher key comes from WSMQ_PUBLISHER_KEY (not needed in dev mode).`

func (c *cli) send(ctx context.Context, args []string) error {
	fs := c.newFlagSet("send", sendHelp)
	file := fs.String("file", "", "read messages from `FILE` (\"-\" for stdin) and send them with SendBatch")
	delay := fs.Duration("delay", 0, "hide the message for `D` (whole seconds; 0: the queue's default)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *file != "" {
		if err := fs.nargs(pos, 0, "no arguments with --file"); err != nil {
			return err
		}
		return c.sendFile(ctx, *file)
	}
	if err := fs.nargs(pos, 2, "QUEUE MESSAGE"); err != nil {
		return err
	}
	queue, msg := pos[0], pos[1]
	if msg == "-" {
		b, err := io.ReadAll(io.LimitReader(c.stdin, batchfile.MaxLineBytes))
		if err != nil {
			return fmt.Errorf("read the message from stdin: %w", err)
		}
		msg = string(b)
	}
	pc, err := c.publisherClient(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = pc.Close() }()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, err := pc.Send(cctx, queue, msg, *delay)
	if err != nil {
		return fmt.Errorf("publisher %s: %s", c.g.publisher, grpcError(err))
	}
	_, _ = fmt.Fprintln(c.stdout, id)
	return nil
}

func (c *cli) publisherClient(ctx context.Context) (*client.Client, error) {
	opts := client.Options{Key: c.g.publisherKey, Insecure: !c.g.grpcTLS}
	if c.g.grpcTLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	pc, err := client.Dial(ctx, c.g.publisher, opts)
	if err != nil {
		return nil, fmt.Errorf("publisher %s: %w", c.g.publisher, err)
	}
	return pc, nil
}

// sendResult is one printed line of send --file.
type sendResult struct {
	Line  int    `json:"line"`
	Queue string `json:"queue,omitempty"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

func (c *cli) sendFile(ctx context.Context, name string) error {
	in := c.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	pc, err := c.publisherClient(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = pc.Close() }()

	enc := json.NewEncoder(c.stdout)
	var total, failed int
	report := func(r sendResult) error {
		total++
		if r.Error != "" {
			failed++
		}
		return enc.Encode(r)
	}
	var chunk []batchfile.Item
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		items := make([]client.Item, len(chunk))
		for i, it := range chunk {
			items[i] = client.Item{Queue: it.Queue, Message: it.Message, Delay: time.Duration(it.DelaySeconds) * time.Second}
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		results, err := pc.SendBatch(cctx, items)
		if err != nil {
			return fmt.Errorf("publisher %s: SendBatch of lines %d-%d: %s (%d lines sent before)",
				c.g.publisher, chunk[0].Line, chunk[len(chunk)-1].Line, grpcError(err), total-failed)
		}
		for i, r := range results {
			res := sendResult{Line: chunk[i].Line, Queue: chunk[i].Queue, ID: r.ID}
			if r.Err != nil {
				res.Error = grpcError(r.Err)
			}
			if err := report(res); err != nil {
				return err
			}
		}
		chunk = chunk[:0]
		return nil
	}
	r := batchfile.NewReader(in)
	for {
		it, err := r.Next()
		var le *batchfile.LineError
		switch {
		case errors.Is(err, io.EOF):
			if err := flush(); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d lines failed", failed, total)
			}
			return nil
		case errors.As(err, &le):
			if err := report(sendResult{Line: le.Line, Error: le.Err.Error()}); err != nil {
				return err
			}
			continue
		case err != nil:
			if ferr := flush(); ferr != nil {
				return errors.Join(err, ferr)
			}
			return fmt.Errorf("read %s: %w", name, err)
		}
		chunk = append(chunk, it)
		if len(chunk) == rsmq.MaxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// grpcError renders a gRPC error as "Code: message".
func grpcError(err error) string {
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.Unavailable {
			return "unavailable (is the service running?): " + s.Message()
		}
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}
