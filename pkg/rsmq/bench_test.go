package rsmq_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// report adds msgs/s and round trips per message to a benchmark.
func report(b *testing.B, msgs int, start time.Time, rt *roundTrips) {
	b.ReportMetric(float64(msgs)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(rt.n.Load())/float64(msgs), "roundtrips/msg")
}

func benchEnv(b *testing.B) (*env, *rsmq.Client, *roundTrips) {
	e := newEnv(b, rsmq.Options{})
	cfg := rsmq.DefaultQueueConfig()
	cfg.VT = 3600
	if err := e.q.CreateQueue(e.ctx, "bench", cfg); err != nil {
		b.Fatal(err)
	}
	c, rt := e.countedClient(b, rsmq.Options{Realtime: true})
	// Load the scripts and the id clock outside the measurement.
	if _, err := c.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "bench", Message: "warm"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.SendMessage(e.ctx, "bench", "warm", 0); err != nil {
		b.Fatal(err)
	}
	if _, err := c.ReceiveMessages(e.ctx, "bench", rsmq.ReceiveOptions{Max: 2}); err != nil {
		b.Fatal(err)
	}
	return e, c, rt
}

var benchBody = strings.Repeat("x", 100)

func BenchmarkSendMessage(b *testing.B) {
	e, c, rt := benchEnv(b)
	rt.n.Store(0)
	start, n := time.Now(), 0
	for b.Loop() {
		if _, err := c.SendMessage(e.ctx, "bench", benchBody, 0); err != nil {
			b.Fatal(err)
		}
		n++
	}
	report(b, n, start, rt)
}

func BenchmarkSendBatch1000(b *testing.B) {
	e, c, rt := benchEnv(b)
	items := make([]rsmq.SendItem, rsmq.MaxBatch)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: "bench", Message: benchBody, Delay: rsmq.QueueDefault}
	}
	rt.n.Store(0)
	start, n := time.Now(), 0
	for b.Loop() {
		res, err := c.SendBatch(e.ctx, items)
		if err != nil || res[0].Err != nil {
			b.Fatal(err, res[0].Err)
		}
		n += len(items)
	}
	report(b, n, start, rt)
}

// BenchmarkReceiveMessages receives up to 100 messages per call from a
// queue refilled (outside the timer, by another client) when it runs low.
func BenchmarkReceiveMessages(b *testing.B) {
	e, c, rt := benchEnv(b)
	items := make([]rsmq.SendItem, rsmq.MaxBatch)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: "bench", Message: benchBody, Delay: rsmq.QueueDefault}
	}
	rt.n.Store(0)
	var elapsed time.Duration
	n, left := 0, 0
	for b.Loop() {
		if left < 100 {
			b.StopTimer()
			if _, err := e.q.SendBatch(e.ctx, items); err != nil {
				b.Fatal(err)
			}
			left += len(items)
			b.StartTimer()
		}
		t0 := time.Now()
		res, err := c.ReceiveMessages(e.ctx, "bench", rsmq.ReceiveOptions{VT: 3600, Max: 100})
		elapsed += time.Since(t0)
		if err != nil || len(res.Messages) == 0 {
			b.Fatal(err, "no messages")
		}
		n += len(res.Messages)
		left -= len(res.Messages)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(rt.n.Load())/float64(n), "roundtrips/msg")
}
