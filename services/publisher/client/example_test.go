package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/wsmq/wsmq/services/publisher/client"
)

// Example sends one message and a batch to a publisher on the default
// address. It needs a running publisher, so it is compiled but not run by
// `go test`; examples/send is the same as a command.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, "127.0.0.1:9092", client.Options{
		Key:      os.Getenv("WSMQ_CLIENT_KEY"), // "" for a dev-mode publisher
		Insecure: true,                         // loopback; use TLS elsewhere
		Retry:    client.Retry{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	id, err := c.Send(ctx, "user-42", `{"text":"hello"}`, 0)
	if err != nil {
		log.Fatal(err) // status.Code(err) tells InvalidArgument, Unauthenticated, Unavailable...
	}
	fmt.Println("sent", id)

	results, err := c.SendBatch(ctx, []client.Item{
		{Queue: "user-42", Message: "one"},
		{Queue: "user-43", Message: "two", Delay: 5 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range results {
		fmt.Println(i, r.ID, r.Err)
	}
}
