package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/internal/gatewaytest"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// deliveries records the first delivery time of every message id that
// manual-ack clients received (and acknowledged).
type deliveries struct {
	mu  sync.Mutex
	got map[string]time.Time
}

func (d *deliveries) add(id string) {
	d.mu.Lock()
	if _, ok := d.got[id]; !ok {
		d.got[id] = time.Now()
	}
	d.mu.Unlock()
}

func (d *deliveries) at(id string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.got[id]
	return at, ok
}

// consume reads c's messages until ctx ends, recording and acking each.
func consume(ctx context.Context, wg *sync.WaitGroup, c *client.Conn, d *deliveries) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			f, err := c.Next(ctx)
			var ev *client.EventError
			if err != nil && !errors.As(err, &ev) {
				return // ctx done or connection closed; the test's counts tell
			}
			if m, ok := f.(*protocol.Message); ok {
				d.add(m.ID)
				if c.Ack(ctx, m.ID) != nil {
					return
				}
			}
		}
	}()
}

// loadSender sends numbered messages one at a time through a publisher,
// retrying each until the publisher acknowledges it, and records what was
// acknowledged and when each failed attempt happened.
type loadSender struct {
	pc    publisherv1.PublisherServiceClient
	queue string

	mu       sync.Mutex
	acked    map[string]time.Time // id -> acknowledged at
	failures []time.Time
	codes    map[codes.Code]int
	gaveUp   int
}

func (s *loadSender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// run sends until stop is closed; a message whose retries fail for 15 s
// counts in gaveUp.
func (s *loadSender) run(stop <-chan struct{}) {
	for i := 0; ; i++ {
		first := time.Time{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			res, err := s.pc.Send(ctx, &publisherv1.SendRequest{Queue: s.queue, Message: "m-" + strconv.Itoa(i)})
			cancel()
			now := time.Now()
			s.mu.Lock()
			if err == nil {
				s.acked[res.GetId()] = now
				s.mu.Unlock()
				break
			}
			s.failures = append(s.failures, now)
			s.codes[status.Code(err)]++
			if first.IsZero() {
				first = now
			}
			if now.Sub(first) > 15*time.Second {
				s.gaveUp++
				s.mu.Unlock()
				break
			}
			s.mu.Unlock()
			select { // the caller's retry backoff
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// failoverStats is what one failover under load showed.
type failoverStats struct {
	acked, lost int
	gap         time.Duration // kill to the first delivery of a message acknowledged after it
	switchTook  time.Duration // kill to the sentinels agreeing on the new master
	failures    []time.Duration
	codes       map[codes.Code]int
	gaveUp      int
}

// failoverUnderLoad sends continuously to queue through pc, SIGKILLs the
// master after some sends, keeps sending until as many more were
// acknowledged, then waits for the deliveries of everything acknowledged
// (until settle passes with no new delivery).
func failoverUnderLoad(t *testing.T, ha *testenv.HA, pc publisherv1.PublisherServiceClient, queue string, d *deliveries, settle time.Duration) failoverStats {
	t.Helper()
	const batch = 150
	s := &loadSender{pc: pc, queue: queue, acked: map[string]time.Time{}, codes: map[codes.Code]int{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); s.run(stop) }()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-done
		}
	}
	defer halt()
	testenv.Eventually(t, 30*time.Second, "sends before the kill", func() bool { return s.ackedCount() >= batch })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := ha.KillMaster()
	kill := time.Now() // the master is dead (KillMaster waited for its exit)
	ha.WaitFailover(ctx, old.Addr())
	switched := time.Since(kill)
	before := s.ackedCount()
	testenv.Eventually(t, 30*time.Second, "sends after the failover", func() bool { return s.ackedCount() >= before+batch })
	halt()

	st := failoverStats{acked: len(s.acked), switchTook: switched, codes: s.codes, gaveUp: s.gaveUp}
	for _, f := range s.failures {
		st.failures = append(st.failures, f.Sub(kill))
	}
	// Wait for the deliveries: until all arrived or settle passed without
	// progress.
	missing := func() int {
		n := 0
		for id := range s.acked {
			if _, ok := d.at(id); !ok {
				n++
			}
		}
		return n
	}
	last, lastChange := missing(), time.Now()
	for last > 0 && time.Since(lastChange) < settle {
		time.Sleep(50 * time.Millisecond) // polling the consumers' records, not synchronising
		if n := missing(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	st.lost = last
	st.gap = -1
	for id, at := range s.acked {
		if !at.After(kill) {
			continue
		}
		if got, ok := d.at(id); ok && (st.gap < 0 || got.Sub(kill) < st.gap) {
			st.gap = got.Sub(kill)
		}
	}
	return st
}

// scriptCalls reads how many EVAL and EVALSHA commands the node at addr ran.
func scriptCalls(t *testing.T, addr string) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = c.Close() }()
	ctx, cancel := ctxWait()
	defer cancel()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", addr, err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_eval:calls=", "cmdstat_evalsha:calls="} {
			if rest, ok := strings.CutPrefix(line, cmd); ok {
				k, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				n += k
			}
		}
	}
	return n
}

// TestRedisFailoverUnderLoadLosesNoDurablyAcknowledgedSend runs, on one
// Sentinel-managed Redis (a master, two replicas, three sentinels: after a
// failover one replica is left for WAIT) with two gateways and manual-ack
// clients on both, four phases:
//  1. a replica that stops acknowledging (SIGSTOP) while sends wait for two:
//     durable sends fail with UNAVAILABLE within the replica timeout, and
//     succeed once it is back;
//  2. SIGKILL of the master under durable load: every acknowledged send is
//     delivered, delivery resumes within 10 s, sends fail only during the
//     switch and succeed on retry;
//  3. the killed master comes back (empty) and the sentinels make it a
//     replica: no service runs a script on it meanwhile;
//  4. SIGKILL of the master under non-durable load: the loss is reported,
//     not asserted.
func TestRedisFailoverUnderLoadLosesNoDurablyAcknowledgedSend(t *testing.T) {
	st := gatewaytest.StartHA(t, testenv.HAOptions{Replicas: 2}, "WSMQ_VISIBILITY_TIMEOUT=2")
	s := &stack{Stack: st, t: t}
	gw1, gw2 := s.startGateway(), s.startGateway()
	const replicaTimeout = 100 * time.Millisecond
	durable := s.StartPublisherEnv("WSMQ_PUBLISHER_MIN_REPLICAS=1", "WSMQ_PUBLISHER_REPLICA_TIMEOUT="+replicaTimeout.String())
	strict := s.StartPublisherEnv("WSMQ_PUBLISHER_MIN_REPLICAS=2", "WSMQ_PUBLISHER_REPLICA_TIMEOUT="+replicaTimeout.String())
	plain := s.StartPublisherEnv()
	pcDurable, pcStrict, pcPlain := s.DialPublisher(durable), s.DialPublisher(strict), s.DialPublisher(plain)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	d := &deliveries{got: map[string]time.Time{}}
	subscribeBoth := func(name string) string {
		sess := s.user(gw1, name)
		for _, gw := range []*gateway{gw1, gw2} {
			c := dial(t, gw, sess, protocol.AckManual)
			c.subscribe(sess.UserID)
			consume(ctx, &wg, c.c, d)
		}
		return sess.UserID
	}
	qDurable, qPlain := subscribeBoth("durable"), subscribeBoth("plain")

	// 1. A frozen replica, with sends that wait for both.
	send := func(pc publisherv1.PublisherServiceClient, q string) error {
		c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := pc.Send(c, &publisherv1.SendRequest{Queue: q, Message: "probe"})
		return err
	}
	if err := send(pcStrict, qDurable); err != nil {
		t.Fatalf("durable send with live replicas: %v", err)
	}
	replica := st.HA.Nodes[1]
	replica.Signal(syscall.SIGSTOP)
	start := time.Now()
	err := send(pcStrict, qDurable)
	took := time.Since(start)
	replica.Signal(syscall.SIGCONT)
	if status.Code(err) != codes.Unavailable || took > replicaTimeout+time.Second {
		t.Fatalf("durable send to a frozen replica: %v after %s; want UNAVAILABLE within about %s", err, took, replicaTimeout)
	}
	t.Logf("frozen replica: durable send failed UNAVAILABLE after %s", took.Round(time.Millisecond))
	testenv.Eventually(t, 10*time.Second, "durable sends to succeed once the replica is back", func() bool {
		return send(pcStrict, qDurable) == nil
	})

	// 2. Failover under durable load.
	res := failoverUnderLoad(t, st.HA, pcDurable, qDurable, d, 20*time.Second)
	t.Logf("durable: %d acknowledged, %d lost, sentinels switched in %s, delivery resumed %s after the kill, %d failed attempts %v, gave up %d",
		res.acked, res.lost, res.switchTook.Round(time.Millisecond), res.gap.Round(time.Millisecond), len(res.failures), res.codes, res.gaveUp)
	if res.lost != 0 {
		t.Errorf("durable acks: %d of %d acknowledged sends never delivered", res.lost, res.acked)
	}
	if res.gap < 0 || res.gap > 10*time.Second {
		t.Errorf("delivery resumed %s after the kill, want within 10s", res.gap)
	}
	if res.gaveUp > 0 {
		t.Errorf("%d sends failed for 15s: retries must succeed after the switch", res.gaveUp)
	}
	for _, f := range res.failures {
		if f < 0 || f > res.switchTook+3*time.Second {
			t.Errorf("a send failed %s after the kill, outside the switch (0..%s + 3s)", f, res.switchTook)
			break
		}
	}

	// 3. The killed master returns, empty, and is made a replica.
	old := st.Redis
	if st.HA.Node(old.Addr()) != old {
		t.Fatal("the first master is not a node")
	}
	old.Start()
	rctx, rcancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer rcancel()
	stop := make(chan struct{})
	ls := &loadSender{pc: pcDurable, queue: qDurable, acked: map[string]time.Time{}, codes: map[codes.Code]int{}}
	sent := make(chan struct{})
	go func() { defer close(sent); ls.run(stop) }()
	st.HA.WaitReplica(rctx, old)
	close(stop)
	<-sent
	if n := scriptCalls(t, old.Addr()); n != 0 {
		t.Errorf("the demoted master ran %d scripts while it came back: a service wrote to it", n)
	}
	if ls.ackedCount() == 0 {
		t.Error("no send succeeded while the demoted master came back: phase 3 proves nothing")
	}
	t.Logf("demoted master back as a replica; %d durable sends meanwhile, none ran on it", ls.ackedCount())

	// 4. Failover without durable acks: report the loss.
	res = failoverUnderLoad(t, st.HA, pcPlain, qPlain, d, 8*time.Second)
	t.Logf("without durable acks: %d acknowledged, %d lost, sentinels switched in %s, delivery resumed %s after the kill, %d failed attempts %v",
		res.acked, res.lost, res.switchTook.Round(time.Millisecond), res.gap.Round(time.Millisecond), len(res.failures), res.codes)
}
