package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// config is the whole run, parsed once from the command line.
type config struct {
	mode      string // quick, full or custom
	bin       string
	out       string
	chart     string // chart path without extension
	stem      string // file name stem of this run's results
	scenarios []string

	target        bool
	gatewayURL    string
	gatewayAdmin  string
	publisherAddr string
	redisAddr     string
	pprofURL      string
	pids          map[string]int
	publisherKey  string
	user          string
	password      string
	stackLog      string
	gatewayEnv    []string
	stackEnv      []string

	publishers    int
	pubBatch      int
	rate          float64
	pad           int
	dialParallel  int
	quiet         time.Duration
	fanoutClients []int
	fanoutRates   []float64
	fanoutMsgs    int
	ackClients    int
	ackMsgs       int
	burstClients  int
	burstMsgs     int
	idleConns     []int
	idleWindow    time.Duration
	batchMsgs     int
	batchSize     int
	batchQueues   int

	floor         bool
	floorRequests int
	goBench       bool
	goBenchTime   string
	repo          string
	profile       bool
	profileLen    time.Duration
	render        string // re-render this results JSON and exit
}

// sizes per mode: quick fits `make bench` in under 3 minutes on 2 cores.
type sizes struct {
	fanoutClients []int
	fanoutRates   []float64
	fanoutMsgs    int
	ackClients    int
	ackMsgs       int
	burstClients  int
	burstMsgs     int
	idleConns     []int
	idleWindow    time.Duration
	batchMsgs     int
	floorRequests int
}

var presets = map[string]sizes{
	"quick": {[]int{1000}, []float64{0, 20000}, 100000, 1000, 50000, 1000, 100000, []int{5000}, 10 * time.Second, 200000, 200000},
	"full":  {[]int{1000, 5000, 10000}, []float64{0, 20000}, 200000, 1000, 100000, 1000, 100000, []int{10000}, 20 * time.Second, 500000, 200000},
}

var allScenarios = []string{"idle", "fanout", "ack", "burst", "batch"}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseConfig(args []string) (*config, error) {
	c := &config{pids: map[string]int{}}
	fs := flag.NewFlagSet("wsmq-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "quick sizes (make bench, under 3 minutes)")
	full := fs.Bool("full", false, "the issue's full sizes (make bench-full)")
	fs.StringVar(&c.bin, "bin", "bin", "directory of the wsmq binaries (supervisor mode)")
	fs.StringVar(&c.out, "out", "bench/results", "directory for <date>-<mode>.json/.md and the profile")
	fs.StringVar(&c.chart, "chart", "", "chart path without extension (default: <out>/../chart-<mode>; .png and .svg)")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run, in order")
	fs.BoolVar(&c.target, "target", false, "bench an already running stack (use -gateway, -publisher, -redis)")
	fs.StringVar(&c.gatewayURL, "gateway", "http://127.0.0.1:3000", "target gateway URL")
	fs.StringVar(&c.gatewayAdmin, "gateway-admin", "http://127.0.0.1:9193", "target gateway's admin URL (/metrics)")
	fs.StringVar(&c.publisherAddr, "publisher", "127.0.0.1:9092", "target publisher gRPC address")
	fs.StringVar(&c.redisAddr, "redis", "127.0.0.1:6379", "target Redis address")
	fs.StringVar(&c.pprofURL, "pprof", "", "target gateway's pprof URL (e.g. http://127.0.0.1:6060)")
	pids := fs.String("pids", "", "target pids for CPU/RSS: gateway=123,publisher=456 (redis is found by INFO)")
	fs.StringVar(&c.publisherKey, "publisher-key", "", "publisher bearer key (target mode; the supervised stack runs in dev mode)")
	fs.StringVar(&c.user, "user", "demo", "bench user (dev mode creates demo/demo); every client uses its own <userId>-<suffix> queue")
	fs.StringVar(&c.password, "password", "demo", "bench user's password")
	fs.StringVar(&c.stackLog, "stack-log", "", "write the supervised stack's logs to this file")
	var genv, senv listFlag
	fs.Var(&genv, "gateway-env", "extra KEY=VALUE for the gateway (repeatable), e.g. WSMQ_PREFETCH=128")
	fs.Var(&senv, "stack-env", "extra KEY=VALUE for every service (repeatable)")
	fs.IntVar(&c.publishers, "publishers", 4, "concurrent gRPC publishers")
	fs.IntVar(&c.pubBatch, "publish-batch", 50, "messages per SendBatch in fanout/ack (1: unary Send)")
	fs.Float64Var(&c.rate, "rate", 0, "ack publish rate limit in msgs/s (0: as fast as possible)")
	fanR := fs.String("fanout-rates", "", "fanout publish rates in msgs/s, comma-separated, 0 = as fast as possible (default per mode: 0,20000)")
	fs.IntVar(&c.pad, "pad", 32, "padding bytes per message body (besides the stamp and sequence)")
	fs.IntVar(&c.dialParallel, "dial-parallel", 64, "concurrent websocket dials")
	fs.DurationVar(&c.quiet, "quiet", 5*time.Second, "stop waiting for missing messages after this long without progress")
	fanC := fs.String("fanout-clients", "", "fanout client counts, comma-separated (default per mode)")
	fs.IntVar(&c.fanoutMsgs, "fanout-msgs", 0, "messages per fanout run")
	fs.IntVar(&c.ackClients, "ack-clients", 0, "clients in the ack scenario")
	fs.IntVar(&c.ackMsgs, "ack-msgs", 0, "messages in the ack scenario")
	fs.IntVar(&c.burstClients, "burst-clients", 0, "clients that drain the burst")
	fs.IntVar(&c.burstMsgs, "burst-msgs", 0, "messages queued before the burst clients connect")
	idleC := fs.String("idle-conns", "", "idle connection counts, comma-separated")
	fs.DurationVar(&c.idleWindow, "idle-window", 0, "how long idle connections are watched")
	fs.IntVar(&c.batchMsgs, "batch-msgs", 0, "messages in the batch scenario")
	fs.IntVar(&c.batchSize, "batch-size", 1000, "items per SendBatch in the batch scenario")
	fs.IntVar(&c.batchQueues, "batch-queues", 100, "queues the batch scenario spreads over")
	fs.BoolVar(&c.floor, "redis-floor", true, "run redis-benchmark against the stack's Redis")
	fs.IntVar(&c.floorRequests, "floor-requests", 0, "redis-benchmark -n")
	fs.BoolVar(&c.goBench, "gobench", true, "also run the publisher and auth Go benchmarks (needs the source tree, -repo)")
	fs.StringVar(&c.goBenchTime, "gobench-time", "1s", "-benchtime of those Go benchmarks")
	fs.StringVar(&c.repo, "repo", "", "repository root for -gobench (default: the parent of -bin)")
	fs.BoolVar(&c.profile, "profile", false, "capture the gateway's CPU profile during the first fanout (sets WSMQ_PPROF_LISTEN)")
	fs.DurationVar(&c.profileLen, "profile-seconds", 10*time.Second, "length of that profile")
	fs.StringVar(&c.render, "render", "", "only re-render the Markdown and chart of this results JSON")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	switch {
	case *quick && *full:
		errs = append(errs, errors.New("-quick and -full exclude each other"))
	case *full:
		c.mode = "full"
	case *quick:
		c.mode = "quick"
	default:
		c.mode = "custom"
	}
	p := presets["quick"]
	if c.mode == "full" {
		p = presets["full"]
	}
	var err error
	if *fanC != "" {
		if p.fanoutClients, err = parseInts(*fanC); err != nil {
			errs = append(errs, fmt.Errorf("-fanout-clients: %w", err))
		}
	}
	if *idleC != "" {
		if p.idleConns, err = parseInts(*idleC); err != nil {
			errs = append(errs, fmt.Errorf("-idle-conns: %w", err))
		}
	}
	if *fanR != "" {
		p.fanoutRates = nil
		for f := range strings.SplitSeq(*fanR, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v < 0 {
				errs = append(errs, fmt.Errorf("-fanout-rates: %q is not a rate >= 0", f))
			}
			p.fanoutRates = append(p.fanoutRates, v)
		}
	}
	c.fanoutClients, c.idleConns, c.fanoutRates = p.fanoutClients, p.idleConns, p.fanoutRates
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.fanoutMsgs, p.fanoutMsgs)
	def(&c.ackClients, p.ackClients)
	def(&c.ackMsgs, p.ackMsgs)
	def(&c.burstClients, p.burstClients)
	def(&c.burstMsgs, p.burstMsgs)
	def(&c.batchMsgs, p.batchMsgs)
	def(&c.floorRequests, p.floorRequests)
	if c.idleWindow == 0 {
		c.idleWindow = p.idleWindow
	}
	known := map[string]bool{}
	for _, s := range allScenarios {
		known[s] = true
	}
	for s := range strings.SplitSeq(*scen, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !known[s] {
			errs = append(errs, fmt.Errorf("-scenarios: unknown %q (known: %s)", s, strings.Join(allScenarios, ", ")))
		}
		c.scenarios = append(c.scenarios, s)
	}
	if *pids != "" {
		for kv := range strings.SplitSeq(*pids, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if err != nil || k == "" {
				errs = append(errs, fmt.Errorf("-pids: %q is not name=pid", kv))
				continue
			}
			c.pids[k] = n
		}
	}
	for _, kv := range append(append([]string{}, genv...), senv...) {
		if !strings.Contains(kv, "=") {
			errs = append(errs, fmt.Errorf("-gateway-env/-stack-env: %q is not KEY=VALUE", kv))
		}
	}
	c.gatewayEnv, c.stackEnv = genv, senv
	for name, v := range map[string]int{"-publishers": c.publishers, "-publish-batch": c.pubBatch, "-dial-parallel": c.dialParallel, "-batch-size": c.batchSize, "-batch-queues": c.batchQueues} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s: %d must be at least 1", name, v))
		}
	}
	if c.pad < 0 || c.rate < 0 {
		errs = append(errs, errors.New("-pad and -rate must not be negative"))
	}
	return c, errors.Join(errs...)
}
