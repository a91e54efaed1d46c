package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

func TestPercentileUsesNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p0 is the min", ms(3, 5, 9), 0, 3 * time.Millisecond},
		{"p50 of four rounds up the rank", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSortsAndReportsMilliseconds(t *testing.T) {
	l := summarize([]time.Duration{3 * time.Millisecond, 1500 * time.Microsecond, 10 * time.Millisecond, time.Millisecond})
	want := Latency{Count: 4, P50: 1.5, P90: 10, P99: 10, Max: 10}
	if l == nil || *l != want {
		t.Fatalf("summarize = %+v, want %+v", l, want)
	}
	if summarize(nil) != nil {
		t.Fatal("summarize(nil) should be nil")
	}
}

func TestParseCommandStatsReadsCallsPerCommand(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=1200,usec=5000,usec_per_call=4.17,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=9,usec=300,usec_per_call=33.3,rejected_calls=0,failed_calls=0\r\n"
	got, err := parseCommandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	if got["evalsha"] != 1200 || got["client|setinfo"] != 2 || got["info"] != 9 || len(got) != 3 {
		t.Fatalf("parseCommandStats = %v", got)
	}
	usec, err := parseCommandUsec(info)
	if err != nil || usec["evalsha"] != 5000 || usec["info"] != 300 {
		t.Fatalf("parseCommandUsec = %v, %v", usec, err)
	}
	if _, err := parseCommandStats("cmdstat_get:calls=x,usec=1\r\n"); err == nil {
		t.Fatal("a malformed calls value should be an error")
	}
}

func TestCommandDeltaLeavesOutTheBenchsOwnCommands(t *testing.T) {
	before := map[string]int64{"evalsha": 10, "info": 5, "zadd": 3}
	after := map[string]int64{"evalsha": 40, "info": 9, "zadd": 3, "publish": 7}
	d, total := commandDelta(before, after)
	if total != 37 || d["evalsha"] != 30 || d["publish"] != 7 || len(d) != 2 {
		t.Fatalf("commandDelta = %v, %d; want evalsha 30, publish 7, total 37", d, total)
	}
}

func TestParseGatewayCommandsReadsTheRedisCounter(t *testing.T) {
	page := "# HELP wsmq_gateway_redis_commands_total Commands sent to Redis, by command.\n" +
		"# TYPE wsmq_gateway_redis_commands_total counter\n" +
		`wsmq_gateway_redis_commands_total{cmd="evalsha"} 1.5e+06` + "\n" +
		`wsmq_gateway_redis_commands_total{cmd="subscribe"} 12` + "\n" +
		`wsmq_gateway_connections 3` + "\n"
	got := parseGatewayCommands(page)
	if got["evalsha"] != 1500000 || got["subscribe"] != 12 || len(got) != 2 {
		t.Fatalf("parseGatewayCommands = %v", got)
	}
}

func TestParseMemStatsReadsRuntimeFigures(t *testing.T) {
	page := "heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# Alloc = 1234\n# HeapInuse = 8192\n# Stack = 65536 / 98304\n# PauseNs = [0 0]\n"
	got := parseMemStats(page)
	if got["HeapInuse"] != 8192 || got["Stack"] != 65536 || got["Alloc"] != 1234 {
		t.Fatalf("parseMemStats = %v", got)
	}
	if _, ok := got["PauseNs"]; ok {
		t.Fatal("a list value should be skipped")
	}
}

func TestParseProcStatCPUAddsUserAndSystemTicks(t *testing.T) {
	// comm with spaces and parentheses, utime 250, stime 50 ticks.
	stat := "1234 (wsmq (gate way)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 200"
	got, err := parseProcStatCPU(stat)
	if err != nil || got != 3 {
		t.Fatalf("parseProcStatCPU = %v, %v; want 3", got, err)
	}
	if _, err := parseProcStatCPU("garbage"); err == nil {
		t.Fatal("garbage should be an error")
	}
}

func TestBodyCarriesStampAndSequence(t *testing.T) {
	b := appendBody(nil, 1730000000123456789, 4242, 5)
	if string(b) != "1730000000123456789.4242.xxxxx" {
		t.Fatalf("body = %q", b)
	}
	ns, seq, ok := parseBody(string(b))
	if !ok || ns != 1730000000123456789 || seq != 4242 {
		t.Fatalf("parseBody = %d, %d, %v", ns, seq, ok)
	}
	for _, bad := range []string{"", "hello", "12.", ".5.", "x.5.", "12.y."} {
		if _, _, ok := parseBody(bad); ok {
			t.Errorf("parseBody(%q) accepted", bad)
		}
	}
}

func TestTrackerCountsUniqueDuplicateAndForeign(t *testing.T) {
	tr := newTracker(40, false)
	for _, seq := range []int{0, 31, 32, 39, 31, -1, 40} {
		tr.mark(seq)
	}
	if tr.unique.Load() != 4 || tr.dups.Load() != 1 || tr.foreign.Load() != 2 {
		t.Fatalf("unique %d dups %d foreign %d; want 4 1 2", tr.unique.Load(), tr.dups.Load(), tr.foreign.Load())
	}
}

func TestParseRedisBenchmarkReadsQuietOutput(t *testing.T) {
	out := "SET: rps=12000.0 (overall: 11000.0) avg_msec=0.300 (overall: 0.310)\r" +
		"SET: 98522.17 requests per second, p50=0.255 msec                    \n" +
		"GET: 103092.78 requests per second, p50=0.247 msec                    \n\n"
	got := parseRedisBenchmark(out)
	want := []FloorResult{{"SET", 98522.17, 0.255}, {"GET", 103092.78, 0.247}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parseRedisBenchmark = %+v, want %+v", got, want)
	}
}

func TestParseGoBenchReadsCustomMetrics(t *testing.T) {
	out := "goos: linux\npkg: github.com/wsmq/wsmq/services/publisher/internal/service\n" +
		"BenchmarkSend-2   \t   20000\t     51000 ns/op\t     19600 msgs/s\t   1.000 redis-rt/msg\n" +
		"BenchmarkSendBatch-2 \t 50 \t 2100000 ns/op \t 476000 msgs/s \t 0.002 redis-rt/msg\nPASS\n"
	got := parseGoBench(out)
	if len(got) != 2 {
		t.Fatalf("parseGoBench = %+v", got)
	}
	g := got[0]
	if g.Package != "github.com/wsmq/wsmq/services/publisher/internal/service" || g.Name != "BenchmarkSend-2" || g.N != 20000 ||
		g.Metrics["msgs/s"] != 19600 || g.Metrics["redis-rt/msg"] != 1 || g.Metrics["ns/op"] != 51000 {
		t.Fatalf("first benchmark = %+v", g)
	}
}

func TestReportRendersJSONAndMarkdown(t *testing.T) {
	rep := &Report{
		Date: "2026-01-02T03:04:05Z", Mode: "quick", Command: "wsmq-bench -quick",
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", MemoryMB: 1024, Go: "go1.26", Redis: "7.0.15"},
		Results: []Result{
			{Scenario: "fanout", Name: "fanout-unary-1000", PublishMode: "unary", Publishers: 32, PublishBatch: 1, Clients: 1000, Messages: 30000, MsgsPerSec: 16000, Delivered: 30000,
				Latency:   &Latency{Count: 30000, P50: 2, P90: 5, P99: 12.5, Max: 40},
				CPUPerMsg: map[string]float64{"redis": 25, "publisher": 30, "gateway": 20.5, "bench": 40}},
			{Scenario: "fanout", Name: "fanout-unary-1000@5k/s", PublishMode: "unary", Publishers: 32, PublishBatch: 1, Clients: 1000, Messages: 30000, MsgsPerSec: 4990, RatePerSec: 5000, Delivered: 30000,
				Latency: &Latency{Count: 30000, P50: 0.4, P90: 1, P99: 6, Max: 9}},
			{Scenario: "fanout", Name: "fanout-batch-1000", PublishMode: "batch", Publishers: 4, PublishBatch: 50, Clients: 1000, Messages: 30000, MsgsPerSec: 21000, Delivered: 30000,
				Latency: &Latency{Count: 30000, P50: 2, P90: 5, P99: 12.5, Max: 40}, RedisPerMsg: 3.5,
				RedisByCommand: map[string]int64{"evalsha": 60000, "publish": 30000}, CPU: map[string]float64{"gateway": 3.2}},
			{Scenario: "fanout", Name: "fanout-batch-5000", PublishMode: "batch", Clients: 5000, Messages: 30000, MsgsPerSec: 9000, Delivered: 30000},
			{Scenario: "fanout", Name: "fanout-batch-1000@20k/s", PublishMode: "batch", Clients: 1000, Messages: 30000, MsgsPerSec: 19990, RatePerSec: 20000, Delivered: 30000},
			{Scenario: "idle", Name: "idle-10000", Clients: 10000, DurationSec: 10, RSSPerConnKB: 30.5, RedisPerSecPerSub: 0.1,
				RedisByCommand: map[string]int64{"evalsha": 10000}},
			{Scenario: "burst", Name: "burst-100000", Messages: 100000, Error: "dial: refused"},
		},
		RedisFloor: []FloorResult{{"SET", 98000, 0.25}},
	}
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	if len(back.Results) != 7 || back.Results[0].Latency.P99 != 12.5 || back.Results[5].RSSPerConnKB != 30.5 || back.Results[0].CPUPerMsg["gateway"] != 20.5 {
		t.Fatalf("JSON round trip lost figures: %+v", back.Results)
	}
	md := rep.Markdown()
	for _, want := range []string{
		"| delivered msgs/s | fanout-unary-1000 | 16,000 msgs/s | ≥ 15,000 msgs/s | yes |",
		"| latency p50 | fanout-unary-1000 | 2 ms | ≤ 2.5 ms | yes |",
		"| latency p99 | fanout-unary-1000 | 12.5 ms | ≤ 8 ms | **no** |",
		"| latency p50 | fanout-unary-1000@5k/s | 0.4 ms | ≤ 0.5 ms | yes |",
		"| latency p99 | fanout-unary-1000@5k/s | 6 ms | ≤ 5 ms | **no** |",
		"| CPU per msg, Redis + publisher + gateway | fanout-unary-1000 | 75.5 µs | ≤ 70 µs | **no** |",
		"| CPU per msg, Redis | fanout-unary-1000 | 25 µs | ≤ 20 µs | **no** |",
		"| delivered msgs/s | fanout-batch-1000 | 21,000 msgs/s | ≥ 20,000 msgs/s | yes |",
		"| latency p99 | fanout-batch-1000 | 12.5 ms | ≤ 10 ms | **no** |",
		"| fanout-unary-1000 | unary ×32 | 1000 | 30000 | 16,000 |",
		"20.5 / 30 / 25 / 40 |",
		"| gateway RSS per connection | idle-10000 | 30.5 KB | ≤ 24 KB | **no** |",
		"| Redis commands/s per subscription | idle-10000 | 0.1 /s | ≤ 0.2 /s | yes |",
		"| fanout-batch-1000 | batch 50 ×4 | 1000 | 30000 | 21,000 |",
		"**fanout-batch-1000** (per message): evalsha 2, publish 1",
		"**idle-10000** (per second per subscription): evalsha 0.1",
		"**burst-100000 failed**: dial: refused",
		"| SET | 98,000 | 0.25 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	for _, unwanted := range []string{"| delivered msgs/s | fanout-batch-5000", "| delivered msgs/s | fanout-batch-1000@20k/s", "| latency p50 | fanout-batch", "| delivered msgs/s | fanout-unary-1000@5k/s"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("Markdown checks a goal against a run it is not for (%q):\n%s", unwanted, md)
		}
	}
	files, err := writeCharts(rep, t.TempDir()+"/chart")
	if err != nil || len(files) != 2 {
		t.Fatalf("writeCharts = %v, %v", files, err)
	}
}

func TestParseConfigPresetsAndOverrides(t *testing.T) {
	c, err := parseConfig([]string{"-full", "-fanout-msgs", "7", "-scenarios", "fanout,idle"})
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != "full" || len(c.fanoutClients) != 3 || c.fanoutMsgs != 7 || c.burstMsgs != 100000 || c.idleConns[0] != 10000 ||
		strings.Join(c.scenarios, ",") != "fanout,idle" {
		t.Fatalf("config = %+v", c)
	}
	for _, bad := range [][]string{{"-quick", "-full"}, {"-scenarios", "nope"}, {"-fanout-clients", "0"}, {"-pids", "gateway"}, {"-publishers", "0"}, {"-unary-callers", "0"}, {"-publish-modes", "unary,bulk"}, {"-unary-rates", "-1"}} {
		if _, err := parseConfig(bad); err == nil {
			t.Errorf("parseConfig(%q) accepted", bad)
		}
	}
}

// TestQuickFanoutThroughTheSupervisorLosesNothing runs the fanout scenario
// at tiny size against a real stack.
func TestQuickFanoutThroughTheSupervisorLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	scfg := supervisortest.Config(t)
	scfg.GatewayEnv = benchGatewayEnv
	s := supervisortest.Start(t, scfg)
	tg := targetFromStack(s, benchGatewayEnv)
	tg.stop = func(context.Context) error { return nil } // supervisortest stops it
	t.Cleanup(func() { _ = tg.rdb.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := parseConfig([]string{"-quiet", "3s", "-publish-batch", "10", "-unary-callers", "8"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := gwclient.Login(ctx, tg.gatewayURL, "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, tg.publisherAddr, client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	r := &runner{cfg: cfg, t: tg, sess: sess, pub: pub, runID: newRunID(), plain: rsmq.New(tg.rdb, rsmq.Options{})}

	for _, run := range []struct {
		manual bool
		mode   string
	}{{false, "unary"}, {false, "batch"}, {true, "unary"}, {false, "plain"}} {
		res := r.fanout(ctx, 20, 200, run.manual, r.pubModeOf(run.mode), 0)
		if res.Error != "" {
			t.Fatalf("%s: %s", res.Name, res.Error)
		}
		if res.Lost != 0 || res.Delivered != 200 || res.Duplicated != 0 || res.Foreign != 0 {
			t.Fatalf("%s: delivered %d lost %d dup %d foreign %d; want 200 0 0 0", res.Name, res.Delivered, res.Lost, res.Duplicated, res.Foreign)
		}
		if res.Latency == nil || res.Latency.Count != 200 || res.MsgsPerSec <= 0 {
			t.Fatalf("%s: latency %+v msgs/s %v", res.Name, res.Latency, res.MsgsPerSec)
		}
		if run.mode == "plain" {
			if res.RedisByCommand["publish"] != 0 {
				t.Fatalf("%s: %d PUBLISH: the plain sender sends no realtime notification", res.Name, res.RedisByCommand["publish"])
			}
		} else if res.RedisCommands <= 0 || res.RedisByCommand["publish"] < 20 {
			t.Fatalf("%s: Redis commands %d %v: want a PUBLISH per queue at least", res.Name, res.RedisCommands, res.RedisByCommand)
		}
		if _, ok := res.CPU["gateway"]; !ok {
			t.Fatalf("%s: no gateway CPU figure: %v", res.Name, res.CPU)
		}
		// /proc counts CPU in 10 ms ticks: 200 messages may cost a process
		// none, so only the presence of each figure is checked.
		for _, p := range []string{"gateway", "publisher", "redis"} {
			if _, ok := res.CPUPerMsg[p]; !ok {
				t.Fatalf("%s: CPU µs per message %v: no figure for %s", res.Name, res.CPUPerMsg, p)
			}
		}
	}
}
