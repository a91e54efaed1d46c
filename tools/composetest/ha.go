package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// haServices are the ha profile's services (checked healthy like the rest).
var haServices = []string{"redis-replica", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"}

// redisNodes are the services whose containers hold Redis data nodes.
var redisNodes = []string{"redis", "redis-replica", "redis-replica-2"}

// addresses maps each Redis node's address on the network to its service
// (the compose file gives them fixed ones; Sentinel names nodes by address).
func (s *stack) addresses(ctx context.Context, network string) (map[string]string, error) {
	m := map[string]string{}
	for _, svc := range redisNodes {
		ids, err := s.containers(ctx, svc)
		if err != nil || len(ids) != 1 {
			return nil, fmt.Errorf("%s container: %v %v", svc, ids, err)
		}
		ip, err := docker(ctx, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), ids[0])
		if err != nil || ip == "" {
			return nil, fmt.Errorf("%s address: %q %v", svc, ip, err)
		}
		m[ip] = svc
	}
	return m, nil
}

// addressOf is the address of service svc in the map from addresses.
func addressOf(addrs map[string]string, svc string) string {
	for ip, s := range addrs {
		if s == svc {
			return ip
		}
	}
	return ""
}

// sentinelMaster returns SENTINEL MASTER wsmq of one Sentinel as a map.
func (s *stack) sentinelMaster(ctx context.Context, svc string) (map[string]string, error) {
	out, err := s.c(ctx, 30*time.Second, "", "exec", "-T", svc, "redis-cli", "-p", "26379", "sentinel", "master", "wsmq")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := map[string]string{}
	for i := 0; i+1 < len(lines); i += 2 {
		m[strings.TrimSpace(lines[i])] = strings.TrimSpace(lines[i+1])
	}
	return m, nil
}

// waitSentinels waits until every Sentinel names the master (service
// master) that knows two replicas and two other Sentinels, and the master's
// replicas are online.
func (s *stack) waitSentinels(ctx context.Context, master string) error {
	t := time.Now()
	deadline := t.Add(90 * time.Second)
	want := addressOf(s.nodes, master)
	if want == "" {
		return fmt.Errorf("no address of %s in %v", master, s.nodes)
	}
	for {
		var waiting []string
		for _, svc := range []string{"sentinel-1", "sentinel-2", "sentinel-3"} {
			m, err := s.sentinelMaster(ctx, svc)
			switch {
			case err != nil:
				waiting = append(waiting, svc+": "+err.Error())
			case m["num-slaves"] != "2" || m["num-other-sentinels"] != "2" || m["ip"] != want:
				waiting = append(waiting, fmt.Sprintf("%s: master %s, %s replicas, %s other sentinels", svc, m["ip"], m["num-slaves"], m["num-other-sentinels"]))
			}
		}
		info, err := s.c(ctx, 30*time.Second, "", "exec", "-T", master, "redis-cli", "info", "replication")
		if err != nil || strings.Count(info, "state=online") != 2 {
			waiting = append(waiting, master+": replicas not both online")
		}
		if len(waiting) == 0 {
			fmt.Printf("composetest:   3 sentinels agree on master %s (%s) with 2 online replicas after %.1fs\n", master, want, time.Since(t).Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinels not ready: %s", strings.Join(waiting, "; "))
		}
		time.Sleep(time.Second)
	}
}

// delivery is one message frame received by the reader, with its time.
type delivery struct {
	f  *protocol.Message
	at time.Time
}

// reader reads (and acks) frames on c until it fails; its goroutine is
// owned by the caller, which closes c to end it.
func reader(c *gwConn, out chan<- delivery, deadline time.Time) {
	defer close(out)
	for {
		f, err := c.Next(deadline)
		if err != nil {
			return
		}
		m, ok := f.(*protocol.Message)
		if !ok {
			continue
		}
		_ = c.Ack(m.ID)
		out <- delivery{f: m, at: time.Now()}
	}
}

// sentinelsReady is the phase before the kill: the Sentinels agree on the
// master redis (its fixed address) and its two replicas.
func (s *stack) sentinelsReady(ctx context.Context, network string) error {
	nodes, err := s.addresses(ctx, network)
	if err != nil {
		return err
	}
	s.nodes = nodes
	fmt.Printf("composetest:   redis nodes: %v\n", nodes)
	return s.waitSentinels(ctx, "redis")
}

// killMaster: a queued message and a live one sent before `docker kill` of
// the master, and live sends during and after the failover, all arrive.
func (s *stack) killMaster(ctx context.Context) error {
	for _, u := range []string{"ha-user-1", "ha-user-2"} {
		if _, err := s.addUser(ctx, u); err != nil {
			return err
		}
	}
	live, queued := s.users["ha-user-1"].UserID, s.users["ha-user-2"].UserID
	c, early, err := s.dial(ctx, "ha-user-1", "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if len(early) > 0 {
		return fmt.Errorf("unexpected early frames: %v", early)
	}
	queuedMsgs := batch("before-kill-queued", 3)
	if err := s.send(ctx, queued, queuedMsgs); err != nil {
		return err
	}
	before := batch("before-kill-live", 1)
	if err := s.send(ctx, live, before); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	frames := make(chan delivery, 256)
	go reader(c, frames, deadline)
	select {
	case d, ok := <-frames:
		if !ok || d.f.Message != before[0] {
			return fmt.Errorf("before the kill: got %+v", d.f)
		}
	case <-time.After(15 * time.Second):
		return fmt.Errorf("the live message sent before the kill did not arrive")
	}

	ids, err := s.containers(ctx, "redis")
	if err != nil || len(ids) != 1 {
		return fmt.Errorf("redis master container: %v %v", ids, err)
	}
	master := ids[0]
	s.killed = master
	kill := time.Now()
	if _, err := docker(ctx, "kill", master); err != nil {
		return err
	}
	fmt.Printf("composetest:   docker kill %s (the master, redis)\n", master[:12])

	// Live sends, one every 200 ms, during and after the failover; the
	// publisher client retries each while no replica confirms it.
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var failed int
	sendDone := make(chan struct{})
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	go func() {
		defer close(sendDone)
		for i := 1; i <= 40 && sendCtx.Err() == nil; i++ {
			m := fmt.Sprintf("after-kill-%d-%s", i, randomHex(4))
			cctx, cancel := context.WithTimeout(sendCtx, 20*time.Second)
			_, err := s.pub.Send(cctx, live, m, 0)
			cancel()
			mu.Lock()
			if err == nil {
				sent[m] = time.Now()
			} else {
				failed++
			}
			mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
	}()

	// The Sentinels' switch, seen from sentinel-1.
	var switched time.Duration
	var newMaster string
	old := addressOf(s.nodes, "redis")
	for time.Now().Before(deadline) {
		m, err := s.sentinelMaster(ctx, "sentinel-1")
		if err == nil && m["ip"] != old && m["ip"] != "" {
			switched, newMaster = time.Since(kill), m["ip"]
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if newMaster == "" {
		return fmt.Errorf("no failover within the deadline")
	}
	s.master = s.nodes[newMaster]
	if s.master == "" {
		return fmt.Errorf("sentinels promoted %s, not the address of a redis node (%v)", newMaster, s.nodes)
	}
	fmt.Printf("composetest:   sentinels promoted %s (%s) %.1fs after the kill (down-after-milliseconds 5000)\n", s.master, newMaster, switched.Seconds())

	got := map[string]time.Time{}
	var firstAfter time.Time
	last := kill
	var gap time.Duration
	dups := 0
	for {
		mu.Lock()
		missing := 0
		for m := range sent {
			if _, ok := got[m]; !ok {
				missing++
			}
		}
		mu.Unlock()
		select {
		case <-sendDone:
			if missing == 0 {
				goto done
			}
		default:
		}
		select {
		case d, ok := <-frames:
			if !ok {
				return fmt.Errorf("websocket ended with %d sent messages missing", missing)
			}
			if _, seen := got[d.f.Message]; seen || d.f.Message == before[0] {
				dups++
				continue
			}
			got[d.f.Message] = d.at
			if firstAfter.IsZero() {
				firstAfter = d.at
			}
			if g := d.at.Sub(last); g > gap {
				gap = g
			}
			last = d.at
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				return fmt.Errorf("%d sent messages not delivered within the deadline", missing)
			}
		}
	}
done:
	mu.Lock()
	nsent, nfailed := len(sent), failed
	mu.Unlock()
	if nsent < 20 {
		return fmt.Errorf("only %d of 40 sends after the kill succeeded", nsent)
	}
	fmt.Printf("composetest:   %d live sends after the kill acknowledged (%d failed after retries), all delivered, %d duplicates;"+
		" first delivery %.1fs after the kill, longest delivery gap %.1fs\n",
		nsent, nfailed, dups, firstAfter.Sub(kill).Seconds(), gap.Seconds())

	c2, early2, err := s.dial(ctx, "ha-user-2", "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c2.Close() }()
	if _, err := collect(c2, early2, queuedMsgs, true, 30*time.Second); err != nil {
		return fmt.Errorf("queued before the kill: %w", err)
	}
	fmt.Printf("composetest:   the %d messages queued before the kill (durably acked) delivered from the new master\n", len(queuedMsgs))

	restarted, _ := docker(ctx, "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", master)
	fmt.Printf("composetest:   killed master after the phase: running/restarts %s\n", restarted)
	return nil
}

// oldMasterReturns starts the killed master again: it comes back with its
// fixed address and its AOF as a master, and the Sentinels must turn it
// into a replica of the new master (then they agree on two replicas again).
func (s *stack) oldMasterReturns(ctx context.Context) error {
	t := time.Now()
	if _, err := docker(ctx, "start", s.killed); err != nil {
		return err
	}
	want := "master_host:" + addressOf(s.nodes, s.master)
	deadline := t.Add(90 * time.Second)
	for {
		info, err := s.c(ctx, 30*time.Second, "", "exec", "-T", "redis", "redis-cli", "info", "replication")
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, want) &&
			strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the old master is not a replica of %s in sync after 90s: %s", s.master, strings.TrimSpace(info))
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Printf("composetest:   docker start of the old master: a replica of %s in sync after %.1fs\n", s.master, time.Since(t).Seconds())
	return s.waitSentinels(ctx, s.master)
}

// healthprobe runs the gateway's readiness probe inside its container.
func healthprobe(ctx context.Context, id string) error {
	_, err := docker(ctx, "exec", id, "/usr/local/bin/healthprobe", "http://127.0.0.1:9193/readyz")
	return err
}

// cutGateway disconnects the gateway from the compose network: it reports
// not ready; reconnected (with its aliases), ready again and serving.
func (s *stack) cutGateway(ctx context.Context, network string) error {
	ids, err := s.containers(ctx, "gateway")
	if err != nil || len(ids) == 0 {
		return fmt.Errorf("gateway container: %v", err)
	}
	gw := ids[0]
	if err := healthprobe(ctx, gw); err != nil {
		return fmt.Errorf("gateway not ready before the cut: %w", err)
	}
	raw, err := docker(ctx, "inspect", "-f", fmt.Sprintf("{{json (index .NetworkSettings.Networks %q).Aliases}}", network), gw)
	if err != nil {
		return err
	}
	var aliases []string
	if err := json.Unmarshal([]byte(raw), &aliases); err != nil {
		return fmt.Errorf("aliases %q: %w", raw, err)
	}
	t := time.Now()
	if _, err := docker(ctx, "network", "disconnect", network, gw); err != nil {
		return err
	}
	if err := pollProbe(ctx, gw, false, 60*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   network disconnect %s: /readyz not ready after %.1fs\n", gw[:12], time.Since(t).Seconds())
	args := []string{"network", "connect"}
	for _, a := range aliases {
		args = append(args, "--alias", a)
	}
	t = time.Now()
	if _, err := docker(ctx, append(args, network, gw)...); err != nil {
		return err
	}
	if err := pollProbe(ctx, gw, true, 60*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   network connect (aliases %s): /readyz ready again after %.1fs\n", strings.Join(aliases, ","), time.Since(t).Seconds())
	c, early, err := s.dial(ctx, "ha-user-1", "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	want := batch("after-reconnect", 2)
	if err := s.sendRetry(ctx, s.users["ha-user-1"].UserID, want); err != nil {
		return err
	}
	if _, err := collect(c, early, want, true, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   the reconnected gateway serves through the lb again %.1fs after the connect\n", time.Since(t).Seconds())
	return nil
}

// pollProbe polls the gateway's readiness until it is (or is not) ready.
func pollProbe(ctx context.Context, id string, ready bool, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		err := healthprobe(ctx, id)
		if (err == nil) == ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway %s: readiness still %v after %s (%v)", id[:12], !ready, bound, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
