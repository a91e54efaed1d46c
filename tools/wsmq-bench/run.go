package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/publisher/client"
)

// run is the whole bench: parse, start or reach the stack, run the
// scenarios, write the report.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { _, _ = fmt.Fprintf(stdout, "wsmq-bench: "+format+"\n", a...) }
	began := time.Now()
	nofile, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise the open-files limit: %w", err)
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	cfg.stem = began.Format("2006-01-02") + "-" + cfg.mode
	if cfg.render != "" {
		return rerender(cfg, logf)
	}
	if cfg.chart == "" {
		cfg.chart = filepath.Join(filepath.Dir(filepath.Clean(cfg.out)), "chart-"+cfg.mode)
	}

	var t *target
	if cfg.target {
		t, err = useTarget(ctx, cfg)
	} else {
		log := io.Discard
		if cfg.stackLog != "" {
			f, err := os.Create(cfg.stackLog)
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			log = f
		}
		logf("starting the stack from %s", cfg.bin)
		t, err = startStack(ctx, cfg, log)
	}
	if err != nil {
		return err
	}
	defer func() {
		_ = t.rdb.Close()
		if err := t.stop(context.Background()); err != nil {
			logf("stop the stack: %v", err)
		}
	}()

	rep := &Report{
		Date:       began.Format(time.RFC3339),
		Mode:       cfg.mode,
		Command:    "wsmq-bench " + strings.Join(args, " "),
		Machine:    machine(ctx, t, nofile),
		GatewayEnv: t.gatewayEnv,
		Notes: []string{
			"One bench user; each websocket client subscribes to its own queue <userId>-<suffix> (per-user delivery without creating thousands of users through bcrypt).",
			fmt.Sprintf("Publish modes of fanout and ack: `unary` = %d concurrent gRPC callers over one connection, one unary Send per message (what a backend does per event); `batch` = %d callers, SendBatch of %d. Each message is stamped with its send time just before its call; burst and batch use SendBatch of 1,000. Bodies %d+ bytes. Compare unary with unary and batch with batch only.", cfg.unaryCallers, cfg.publishers, cfg.pubBatch, cfg.pad+20),
			"CPU µs/msg: CPU time of each process over the scenario's window (from /proc/<pid>/stat) divided by the messages delivered.",
			"All processes (Redis, MongoDB-wire server, auth, publisher, gateway and this bench with its websocket clients) share the machine; the bench's own CPU is shown as `bench`.",
		},
	}
	rep.Notes = append(rep.Notes, "A scenario name ending in @N k/s had its publishers paced to that total rate (open loop), to read latency at a given load; the others publish as fast as they can (closed loop), so their latency includes queueing at saturation.")
	if cfg.rate > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("ack publishers are paced to %.0f msgs/s in total.", cfg.rate))
	}

	sess, err := gwclient.Login(ctx, t.gatewayURL, cfg.user, cfg.password)
	if err != nil {
		return err
	}
	pub, err := client.Dial(ctx, t.publisherAddr, client.Options{Key: t.publisherKey, Insecure: true})
	if err != nil {
		return fmt.Errorf("dial the publisher: %w", err)
	}
	defer func() { _ = pub.Close() }()
	r := &runner{cfg: cfg, t: t, sess: sess, pub: pub, runID: newRunID(), logf: logf,
		plain: rsmq.New(t.rdb, rsmq.Options{})}

	for _, s := range cfg.scenarios {
		var results []Result
		switch s {
		case "fanout":
			for _, c := range cfg.fanoutClients {
				for _, m := range cfg.pubModes {
					pm := r.pubModeOf(m)
					rates := cfg.fanoutRates
					if m == "unary" {
						rates = cfg.unaryRates
					}
					for _, rate := range rates {
						pace := "closed loop"
						if rate > 0 {
							pace = fmt.Sprintf("paced to %.0f msgs/s", rate)
						}
						logf("fanout: %d clients, %d messages, %s publish (%d callers, %d per call), %s", c, cfg.fanoutMsgs, m, pm.callers, pm.batch, pace)
						results = append(results, r.fanout(ctx, c, cfg.fanoutMsgs, false, pm, rate))
					}
				}
			}
		case "ack":
			for _, m := range cfg.pubModes {
				pm := r.pubModeOf(m)
				logf("ack: %d clients, %d messages, manual acks, %s publish (%d callers, %d per call)", cfg.ackClients, cfg.ackMsgs, m, pm.callers, pm.batch)
				results = append(results, r.fanout(ctx, cfg.ackClients, cfg.ackMsgs, true, pm, cfg.rate))
			}
		case "plain":
			pm := r.pubModeOf("plain")
			logf("plain: %d clients, %d messages sent straight to Redis without realtime (as plain Node rsmq), paced to %d msgs/s", plainClients, plainMsgs, plainRate)
			results = append(results, r.fanout(ctx, plainClients, plainMsgs, false, pm, plainRate))
		case "burst":
			logf("burst: %d messages queued, then %d clients", cfg.burstMsgs, cfg.burstClients)
			results = append(results, r.burst(ctx, cfg.burstClients, cfg.burstMsgs))
		case "idle":
			for _, c := range cfg.idleConns {
				logf("idle: %d connections watched for %s", c, cfg.idleWindow)
				results = append(results, r.idle(ctx, c, cfg.idleWindow))
			}
		case "batch":
			logf("batch: %d messages in SendBatch of %d", cfg.batchMsgs, cfg.batchSize)
			results = append(results, r.batch(ctx, cfg.batchMsgs, cfg.batchSize, cfg.batchQueues))
		}
		for _, res := range results {
			logf("  %s", oneLine(res))
		}
		rep.Results = append(rep.Results, results...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if cfg.floor {
		logf("redis floor: redis-benchmark -t set,get -n %d", cfg.floorRequests)
		floor, cmd, err := r.redisFloor(ctx)
		rep.RedisFloorCm = cmd
		if err != nil {
			rep.Notes = append(rep.Notes, "Redis floor not measured: "+err.Error())
		}
		rep.RedisFloor = floor
	}
	rep.Profile = r.profile
	if err := t.stop(ctx); err != nil {
		logf("stop the stack: %v", err)
	}
	t.stop = func(context.Context) error { return nil }

	if cfg.goBench {
		repo := cfg.repo
		if repo == "" {
			repo = filepath.Dir(filepath.Clean(cfg.bin))
		}
		if _, err := os.Stat(filepath.Join(repo, "go.work")); err != nil {
			rep.GoBenchError = "no go.work in " + repo + " (set -repo)"
		} else {
			logf("go benchmarks: publisher Send/SendBatch/UnarySend (gRPC, HTTP), rsmq DeliveryCycle (status, receipts), auth Verify (-benchtime %s)", cfg.goBenchTime)
			rep.GoBench, err = runGoBench(ctx, repo, cfg.goBenchTime)
			if err != nil {
				rep.GoBenchError = err.Error()
			}
		}
	}
	rep.TotalSec = round(time.Since(began).Seconds(), 1)
	return writeReport(rep, cfg, logf)
}

// rerender rewrites the Markdown and the chart of a saved report.
func rerender(cfg *config, logf func(string, ...any)) error {
	b, err := os.ReadFile(cfg.render)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", cfg.render, err)
	}
	cfg.out = filepath.Dir(cfg.render)
	cfg.stem = strings.TrimSuffix(filepath.Base(cfg.render), ".json")
	if cfg.chart == "" {
		cfg.chart = filepath.Join(filepath.Dir(filepath.Clean(cfg.out)), "chart-"+rep.Mode)
	}
	return writeReport(&rep, cfg, logf)
}

func writeReport(rep *Report, cfg *config, logf func(string, ...any)) error {
	js, err := rep.JSON()
	if err != nil {
		return err
	}
	base := filepath.Join(cfg.out, cfg.stem)
	if err := os.WriteFile(base+".json", js, 0o644); err != nil {
		return err
	}
	md := rep.Markdown()
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	files := []string{base + ".json", base + ".md"}
	charts, err := writeCharts(rep, cfg.chart)
	if err != nil {
		logf("chart: %v", err)
	}
	files = append(files, charts...)
	logf("wrote %s", strings.Join(files, ", "))
	return nil
}

func oneLine(r Result) string {
	if r.Error != "" {
		return r.Name + ": FAILED: " + r.Error
	}
	s := fmt.Sprintf("%s: %.2fs", r.Name, r.DurationSec)
	if r.MsgsPerSec > 0 {
		s += fmt.Sprintf(", %s msgs/s", num(r.MsgsPerSec))
	}
	if r.Latency != nil {
		s += fmt.Sprintf(", p50 %s p99 %s max %s ms", num(r.Latency.P50), num(r.Latency.P99), num(r.Latency.Max))
	}
	if r.Scenario != "idle" && r.Scenario != "batch" {
		s += fmt.Sprintf(", lost %d dup %d", r.Lost, r.Duplicated)
	}
	if r.RedisPerMsg > 0 {
		s += fmt.Sprintf(", %s Redis cmds/msg", num(r.RedisPerMsg))
	}
	if r.Scenario == "idle" {
		s += fmt.Sprintf(", %s conn/s, %s KB RSS/conn, %s Redis cmds/s per sub", num(r.ConnectPerSec), num(r.RSSPerConnKB), num(r.RedisPerSecPerSub))
	}
	if len(r.CPU) > 0 {
		s += ", CPU s gw/pub/redis/bench " + cpus(r.CPU)
	}
	return s
}

// machine describes the host from /proc and the stack's Redis.
func machine(ctx context.Context, t *target, nofile uint64) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OpenFilesMax: nofile}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				m.MemoryMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if info, err := t.rdb.Info(ctx, "server").Result(); err == nil {
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	return m
}

// The plain scenario: senders without realtime notifications (plain Node
// rsmq) at a modest pace; its latency is the gateway's wake-up path for
// them (keyspace notifications when Redis has them on, else the sweep).
const (
	plainClients = 100
	plainMsgs    = 5000
	plainRate    = 1000
)
