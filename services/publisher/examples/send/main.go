// Command send puts one message on a wsmq queue through the publisher, using
// the client package:
//
//	go run ./services/publisher/examples/send -addr 127.0.0.1:9092 -queue q1 -message hi
//
// The key comes from WSMQ_CLIENT_KEY (empty for a dev-mode publisher).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/wsmq/wsmq/services/publisher/client"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9092", "publisher gRPC address")
	queue := flag.String("queue", "q1", "queue name")
	message := flag.String("message", "hi", "message body")
	delay := flag.Duration("delay", 0, "delay before the message is visible (0: queue default)")
	plaintext := flag.Bool("plaintext", true, "no TLS (loopback)")
	flag.Parse()
	id, err := send(*addr, *queue, *message, *delay, *plaintext)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(id)
}

func send(addr, queue, message string, delay time.Duration, plaintext bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, addr, client.Options{Key: os.Getenv("WSMQ_CLIENT_KEY"), Insecure: plaintext})
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	return c.Send(ctx, queue, message, delay)
}
