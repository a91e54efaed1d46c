package rsmq_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// redisInfo reads one INFO section as field → value.
func (e *env) redisInfo(b *testing.B, section string) map[string]string {
	b.Helper()
	s, err := e.raw.Info(e.ctx, section).Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// scriptUsec is the Redis CPU time spent in scripts so far (INFO
// commandstats usec of EVAL and EVALSHA; the commands a script runs are
// inside its time).
func (e *env) scriptUsec(b *testing.B) int64 {
	b.Helper()
	var total int64
	for k, v := range e.redisInfo(b, "commandstats") {
		if k != "cmdstat_evalsha" && k != "cmdstat_eval" {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "usec="); ok {
				u, _ := strconv.ParseInt(n, 10, 64)
				total += u
			}
		}
	}
	return total
}

func (e *env) usedMemory(b *testing.B) int64 {
	b.Helper()
	n, _ := strconv.ParseInt(e.redisInfo(b, "memory")["used_memory"], 10, 64)
	return n
}

// BenchmarkDeliveryCycle runs one message's whole life as the publisher
// and the gateway run it (SendBatch of 100, one receive of 100, one
// delete by receipts of the 100) with delivery status and the receipts
// stream off and on. Per message it reports the Redis CPU in scripts
// (redis-µs/msg, INFO commandstats) and the Redis memory the message
// leaves behind (bytes/msg: the status key kept for WSMQ_STATUS_TTL, the
// stream entries kept up to the cap; the queue itself ends empty).
func BenchmarkDeliveryCycle(b *testing.B) {
	const n = 100
	for _, bc := range []struct {
		name string
		opts rsmq.Options
	}{
		{"off", rsmq.Options{}},
		{"status", rsmq.Options{StatusTTL: time.Hour}},
		{"stream", rsmq.Options{ReceiptsCap: 100_000_000}},
		{"status+stream", rsmq.Options{StatusTTL: time.Hour, ReceiptsCap: 100_000_000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, rsmq.Options{})
			cfg := rsmq.DefaultQueueConfig()
			cfg.VT = 3600
			if err := e.q.CreateQueue(e.ctx, "bench", cfg); err != nil {
				b.Fatal(err)
			}
			pub := rsmq.New(e.raw, bc.opts) // the publisher marks the queue
			items := make([]rsmq.SendItem, n)
			for i := range items {
				items[i] = rsmq.SendItem{Queue: "bench", Message: benchBody, Delay: rsmq.QueueDefault}
			}
			cycle := func() {
				if _, err := pub.SendBatch(e.ctx, items); err != nil {
					b.Fatal(err)
				}
				res, err := e.q.ReceiveMessages(e.ctx, "bench", rsmq.ReceiveOptions{VT: 3600, Max: n})
				if err != nil || len(res.Messages) != n {
					b.Fatal(err, "short receive")
				}
				rs := make([]rsmq.Receipt, n)
				for i, m := range res.Messages {
					rs[i] = m.Receipt()
				}
				if _, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "bench", Receipts: rs}}); err != nil {
					b.Fatal(err)
				}
			}
			cycle() // scripts loaded, queue marked
			usec, mem, msgs := e.scriptUsec(b), e.usedMemory(b), 0
			for b.Loop() {
				cycle()
				msgs += n
			}
			b.StopTimer()
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(e.scriptUsec(b)-usec)/float64(msgs), "redis-µs/msg")
			b.ReportMetric(float64(e.usedMemory(b)-mem)/float64(msgs), "bytes/msg")
		})
	}
}
