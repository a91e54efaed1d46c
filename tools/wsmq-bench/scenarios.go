package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/client"
)

// runner runs scenarios against one target.
type runner struct {
	cfg     *config
	t       *target
	sess    session
	pub     *client.Client
	plain   *rsmq.Client // sends straight to Redis without realtime, as plain Node rsmq
	runID   string       // queue-name prefix unique to this run
	n       int          // scenarios run so far (queue prefixes)
	profile *Profile
	logf    func(format string, args ...any)
}

func newRunID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b)
}

func (r *runner) prefix(kind string) string {
	r.n++
	return fmt.Sprintf("%s%s%d-", r.runID, kind, r.n)
}

// publish sends n messages, message k to queues[k%len(queues)], from
// workers goroutines in batches of batch items (1: unary Send), paced to
// rate msgs/s when rate > 0. It returns how long the sending took.
func (r *runner) publish(ctx context.Context, n int, queues []string, pm pubMode, rate float64) (time.Duration, error) {
	workers, batch := pm.callers, pm.batch
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var next atomic.Int64
	errc := make(chan error, workers)
	for range workers {
		go func() {
			errc <- r.publishWorker(ctx, &next, start, n, queues, batch, pm.name == "plain", rate)
		}()
	}
	var first error
	for range workers {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return time.Since(start), first
}

func (r *runner) publishWorker(ctx context.Context, next *atomic.Int64, start time.Time, n int, queues []string, batch int, plain bool, rate float64) error {
	items := make([]client.Item, 0, batch)
	var body []byte
	for {
		from := int(next.Add(int64(batch))) - batch
		if from >= n {
			return nil
		}
		to := min(from+batch, n)
		if rate > 0 {
			if wait := time.Until(start.Add(time.Duration(float64(from) / rate * float64(time.Second)))); wait > 0 {
				select { // pacing an open-loop load, not synchronisation
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		items = items[:0]
		for k := from; k < to; k++ {
			body = appendBody(body[:0], time.Now().UnixNano(), k, r.cfg.pad)
			items = append(items, client.Item{Queue: queues[k%len(queues)], Message: string(body)})
		}
		if plain {
			if _, err := r.plain.SendMessage(ctx, items[0].Queue, items[0].Message, 0); err != nil {
				return fmt.Errorf("publish: rsmq SendMessage: %w", err)
			}
			continue
		}
		if len(items) == 1 {
			if _, err := r.pub.Send(ctx, items[0].Queue, items[0].Message, 0); err != nil {
				return fmt.Errorf("publish: Send: %w", err)
			}
			continue
		}
		res, err := r.pub.SendBatch(ctx, items)
		if err != nil {
			return fmt.Errorf("publish: SendBatch: %w", err)
		}
		for i, x := range res {
			if x.Err != nil {
				return fmt.Errorf("publish: item %d of a batch: %w", i, x.Err)
			}
		}
	}
}

func queueNames(userID, prefix string, n int) []string {
	qs := make([]string, n)
	for i := range qs {
		qs[i] = userID + "-" + prefix + strconv.Itoa(i)
	}
	return qs
}

// waitDelivered waits until tr saw every expected message, or no new one
// arrived for quiet, or the deadline passed.
func waitDelivered(ctx context.Context, tr *tracker, quiet, deadline time.Duration) {
	end := time.Now().Add(deadline)
	last, lastChange := int64(-1), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got := tr.unique.Load()
		if got >= int64(tr.expected) {
			return
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		if time.Since(lastChange) > quiet || time.Now().After(end) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// settle gives the gateway's asynchronous deletes time to reach Redis
// before the closing snapshot: the window of a measurement, not a
// synchronisation.
const settle = 300 * time.Millisecond

func (r *runner) deliveryDeadline(msgs int) time.Duration {
	return 60*time.Second + time.Duration(msgs)*time.Millisecond
}

// pubMode is how a fanout or ack run publishes: name "unary" (callers
// concurrent callers, one Send per message), "batch" (SendBatch of batch)
// or "plain" (straight to Redis without realtime, as plain Node rsmq).
type pubMode struct {
	name           string
	callers, batch int
}

// pubModeOf is the configured publish mode called name.
func (r *runner) pubModeOf(name string) pubMode {
	switch name {
	case "unary":
		return pubMode{name, r.cfg.unaryCallers, 1}
	case "plain":
		return pubMode{name, 8, 1}
	}
	return pubMode{name, r.cfg.publishers, r.cfg.pubBatch}
}

// fanout: clients subscribed to their own queues, publishers sending while
// they listen. manual selects ?ack=manual with an /ack per message.
func (r *runner) fanout(ctx context.Context, clients, msgs int, manual bool, pm pubMode, rate float64) Result {
	kind := "fanout"
	if manual {
		kind = "ack"
	}
	res := Result{Scenario: kind, Name: fmt.Sprintf("%s-%s-%d", kind, pm.name, clients), Clients: clients, Messages: msgs,
		PublishMode: pm.name, Publishers: pm.callers, PublishBatch: pm.batch, RatePerSec: rate}
	if rate > 0 {
		res.Name += fmt.Sprintf("@%gk/s", rate/1000)
	}
	prefix := r.prefix(kind[:1])
	t0 := time.Now()
	f, err := connect(ctx, r.t.gatewayURL, r.sess, clients, r.cfg.dialParallel, prefix, manual, nil)
	if err != nil {
		return res.fail(err)
	}
	defer f.close()
	res.ConnectSec = round(time.Since(t0).Seconds(), 3)
	res.ConnectPerSec = round(float64(clients)/time.Since(t0).Seconds(), 0)
	tr := newTracker(msgs, true)
	f.tr.Store(tr)

	s0, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	profDone := r.startProfile(ctx, res.Name)
	start := time.Now()
	pubDur, err := r.publish(ctx, msgs, queueNames(r.sess.UserID, prefix, clients), pm, rate)
	if err != nil {
		return res.fail(err)
	}
	res.PublishPerSec = round(float64(msgs)/pubDur.Seconds(), 0)
	waitDelivered(ctx, tr, r.cfg.quiet, r.deliveryDeadline(msgs))
	time.Sleep(settle)
	s1, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	f.close()
	lat, last := f.collect()
	if profDone != nil {
		<-profDone
	}
	res.fill(tr, between(s0, s1), start, last)
	res.Latency = summarize(lat)
	if n, e := f.readErrors(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d clients' readers failed, first: %v", n, e))
	}
	return res
}

// burst: messages queued while nobody listens, then the clients connect
// and drain them.
func (r *runner) burst(ctx context.Context, clients, msgs int) Result {
	res := Result{Scenario: "burst", Name: fmt.Sprintf("burst-%d", msgs), Clients: clients, Messages: msgs,
		Publishers: r.cfg.publishers, PublishBatch: 1000}
	prefix := r.prefix("b")
	pubDur, err := r.publish(ctx, msgs, queueNames(r.sess.UserID, prefix, clients), pubMode{"batch", r.cfg.publishers, 1000}, 0)
	if err != nil {
		return res.fail(err)
	}
	res.PublishPerSec = round(float64(msgs)/pubDur.Seconds(), 0)
	tr := newTracker(msgs, false)
	s0, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	start := time.Now()
	f, err := connect(ctx, r.t.gatewayURL, r.sess, clients, r.cfg.dialParallel, prefix, false, tr)
	if err != nil {
		return res.fail(err)
	}
	defer f.close()
	res.ConnectSec = round(time.Since(start).Seconds(), 3)
	res.ConnectPerSec = round(float64(clients)/time.Since(start).Seconds(), 0)
	waitDelivered(ctx, tr, r.cfg.quiet, r.deliveryDeadline(msgs))
	time.Sleep(settle)
	s1, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	f.close()
	_, last := f.collect()
	res.fill(tr, between(s0, s1), start, last)
	res.DrainSec = res.DurationSec
	res.Notes = append(res.Notes, fmt.Sprintf("queued in %.2fs before any client connected; drain time counts from the first connect to the last message (connecting took %.2fs)", pubDur.Seconds(), res.ConnectSec))
	return res
}

// idle: connections that subscribe and then only wait.
func (r *runner) idle(ctx context.Context, conns int, window time.Duration) Result {
	res := Result{Scenario: "idle", Name: fmt.Sprintf("idle-%d", conns), Clients: conns}
	prefix := r.prefix("i")
	rss0 := r.t.rss("gateway")
	mem0 := r.t.gatewayMemory(ctx)
	start := time.Now()
	f, err := connect(ctx, r.t.gatewayURL, r.sess, conns, r.cfg.dialParallel, prefix, false, nil)
	if err != nil {
		return res.fail(err)
	}
	defer f.close()
	d := time.Since(start)
	res.ConnectSec = round(d.Seconds(), 3)
	res.ConnectPerSec = round(float64(conns)/d.Seconds(), 0)
	s0, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	select { // the measurement window
	case <-time.After(window):
	case <-ctx.Done():
		return res.fail(ctx.Err())
	}
	s1, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	rss1 := r.t.rss("gateway")
	mem1 := r.t.gatewayMemory(ctx)
	if r.cfg.profile && r.t.pprofURL != "" {
		file := filepath.Join(r.cfg.out, r.cfg.stem+"-"+res.Name+"-heap.pprof")
		if top, err := heapTop(ctx, r.t.pprofURL, file); err != nil {
			res.Notes = append(res.Notes, "heap profile not taken: "+err.Error())
		} else {
			res.HeapProfile = &Profile{Scenario: res.Name, File: file, Top: top}
		}
	}
	if mem0 != nil && mem1 != nil {
		per := func(k string) float64 { return round(float64(mem1[k]-mem0[k])/float64(conns), 2) }
		res.GatewayPerConn = map[string]float64{
			"goroutines":     per("goroutines"),
			"heap_inuse_kb":  round(per("HeapInuse")/1024, 2),
			"stack_inuse_kb": round(per("Stack")/1024, 2),
		}
	}
	u := between(s0, s1)
	res.DurationSec = round(u.seconds, 2)
	res.CPU = u.cpu
	res.RedisCommands = u.total
	res.RedisByCommand = u.commands
	res.RedisPerSec = round(float64(u.total)/u.seconds, 1)
	res.RedisPerSecPerSub = round(float64(u.total)/u.seconds/float64(conns), 4)
	if rss0 > 0 && rss1 > 0 {
		res.GatewayRSSBeforeKB, res.GatewayRSSAfterKB = rss0, rss1
		res.RSSPerConnKB = round(float64(rss1-rss0)/float64(conns), 2)
	}
	if n, e := f.readErrors(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections failed while idle, first: %v", n, e))
	}
	return res
}

// batch: SendBatch throughput into Redis, no clients.
func (r *runner) batch(ctx context.Context, msgs, size, queues int) Result {
	res := Result{Scenario: "batch", Name: fmt.Sprintf("batch-%d", msgs), Messages: msgs, Publishers: r.cfg.publishers, PublishBatch: size}
	prefix := r.prefix("s")
	s0, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	d, err := r.publish(ctx, msgs, queueNames(r.sess.UserID, prefix, queues), pubMode{"batch", r.cfg.publishers, size}, 0)
	if err != nil {
		return res.fail(err)
	}
	s1, err := r.t.snapshot(ctx)
	if err != nil {
		return res.fail(err)
	}
	u := between(s0, s1)
	res.DurationSec = round(d.Seconds(), 3)
	res.MsgsPerSec = round(float64(msgs)/d.Seconds(), 0)
	res.PublishPerSec = res.MsgsPerSec
	res.CPU = u.cpu
	res.RedisCommands = u.total
	res.RedisByCommand = u.commands
	res.RedisUsecByCommand = u.usec
	res.RedisPerMsg = round(float64(u.total)/float64(msgs), 3)
	res.Notes = append(res.Notes, fmt.Sprintf("%d queues; Redis commands count every command, including those run inside scripts and MULTI blocks", queues))
	return res
}

// gatewayMemory reads the gateway's goroutine count and runtime memory
// figures through its pprof listener; nil without one.
func (t *target) gatewayMemory(ctx context.Context) map[string]int64 {
	if t.pprofURL == "" {
		return nil
	}
	get := func(path string) string {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.pprofURL+path, nil)
		if err != nil {
			return ""
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		return string(b)
	}
	m := parseMemStats(get("/debug/pprof/heap?debug=1&gc=1"))
	g := get("/debug/pprof/goroutine?debug=1")
	if line, _, _ := strings.Cut(g, "\n"); strings.HasPrefix(line, "goroutine profile: total ") {
		n, err := strconv.ParseInt(strings.TrimPrefix(line, "goroutine profile: total "), 10, 64)
		if err == nil {
			m["goroutines"] = n
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// parseMemStats reads the "# Name = value" runtime.MemStats lines at the
// end of a /debug/pprof/heap?debug=1 page ("# Stack = inuse / sys" gives
// Stack = inuse).
func parseMemStats(page string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.Lines(page) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "# ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(rest, " = ")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " / ") // "# Stack = inuse / sys"
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}

// startProfile captures the gateway's CPU profile for the first scenario
// that asks, when the gateway has a pprof listener. The returned channel
// closes when the profile is written; nil when none is taken.
func (r *runner) startProfile(ctx context.Context, name string) <-chan struct{} {
	if !r.cfg.profile || r.t.pprofURL == "" || r.profile != nil {
		return nil
	}
	file := filepath.Join(r.cfg.out, r.cfg.stem+"-"+name+".pprof")
	r.profile = &Profile{Scenario: name, File: file, Seconds: int(r.cfg.profileLen.Seconds())}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fetchProfile(ctx, r.t.pprofURL, r.profile.Seconds, file); err != nil {
			r.profile.Error = err.Error()
			return
		}
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=30", file).CombinedOutput()
		if err != nil {
			r.profile.Error = fmt.Sprintf("go tool pprof: %v: %s", err, out)
			return
		}
		r.profile.Top = string(out)
	}()
	return done
}

// heapTop saves the gateway's heap profile and returns its top in-use
// allocation sites.
func heapTop(ctx context.Context, base, file string) (string, error) {
	if err := fetchPprof(ctx, base+"/debug/pprof/heap?gc=1", file); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=15", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %v: %s", err, out)
	}
	return string(out), nil
}

func fetchProfile(ctx context.Context, base string, seconds int, file string) error {
	return fetchPprof(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds), file)
}

func fetchPprof(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

var floorLine = regexp.MustCompile(`([A-Z]+): ([0-9.]+) requests per second(?:, p50=([0-9.]+) msec)?`)

// parseRedisBenchmark reads redis-benchmark -q output.
func parseRedisBenchmark(out string) []FloorResult {
	var res []FloorResult
	for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		m := floorLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "rps=") {
			continue
		}
		rps, _ := strconv.ParseFloat(m[2], 64)
		p50, _ := strconv.ParseFloat(m[3], 64)
		res = append(res, FloorResult{Test: m[1], RequestsPerSec: rps, P50ms: p50})
	}
	return res
}

// redisFloor runs redis-benchmark against the stack's Redis.
func (r *runner) redisFloor(ctx context.Context) ([]FloorResult, string, error) {
	host, port, _ := strings.Cut(r.t.redisAddr, ":")
	args := []string{"-h", host, "-p", port, "-q", "-t", "set,get", "-n", strconv.Itoa(r.cfg.floorRequests)}
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	out, err := cmd.CombinedOutput()
	cmdline := "redis-benchmark " + strings.Join(args, " ")
	if err != nil {
		return nil, cmdline, fmt.Errorf("%s: %w: %s", cmdline, err, out)
	}
	res := parseRedisBenchmark(string(out))
	if len(res) == 0 {
		return nil, cmdline, errors.New("redis-benchmark printed no figures: " + string(out))
	}
	return res, cmdline, nil
}
