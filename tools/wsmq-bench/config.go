package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
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
	unaryCallers  int
	unaryRates    []float64
	pubModes      []string // "unary", "batch": how fanout and ack publish, in this order
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

var allScenarios = []string{"idle", "fanout", "ack", "plain", "burst", "batch"}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseRates parses comma-separated rates >= 0.
func parseRates(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a rate >= 0", f)
		}
		out = append(out, v)
	}
	return out, nil
}

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
	s := pkgconfig.NewSet("wsmq-bench", "")
	var quickVal bool
	quick := &quickVal
	s.Bool(quick, "quick", "", false, "quick sizes (make bench, under 3 minutes)")
	var fullVal bool
	full := &fullVal
	s.Bool(full, "full", "", false, "the issue's full sizes (make bench-full)")
	s.String(&c.bin, "bin", "", "bin", "directory of the wsmq binaries (supervisor mode)")
	s.String(&c.out, "out", "", "bench/results", "directory for <date>-<mode>.json/.md and the profile")
	s.String(&c.chart, "chart", "", "", "chart path without extension (default: <out>/../chart-<mode>; .png and .svg)")
	var scenVal string
	scen := &scenVal
	s.String(scen, "scenarios", "", strings.Join(allScenarios, ","), "scenarios to run, in order")
	s.Bool(&c.target, "target", "", false, "bench an already running stack (use -gateway, -publisher, -redis)")
	s.String(&c.gatewayURL, "gateway", "", "http://127.0.0.1:3000", "target gateway URL")
	s.String(&c.gatewayAdmin, "gateway-admin", "", "http://127.0.0.1:9193", "target gateway's admin URL (/metrics)")
	s.String(&c.publisherAddr, "publisher", "", "127.0.0.1:9092", "target publisher gRPC address")
	s.String(&c.redisAddr, "redis", "", "127.0.0.1:6379", "target Redis: host:port or a WSMQ_REDIS_URL (redis+sentinel:// included)")
	s.String(&c.pprofURL, "pprof", "", "", "target gateway's pprof URL (e.g. http://127.0.0.1:6060)")
	var pidsVal string
	pids := &pidsVal
	s.String(pids, "pids", "", "", "target pids for CPU/RSS: gateway=123,publisher=456 (redis is found by INFO)")
	s.String(&c.publisherKey, "publisher-key", "", "", "publisher bearer key (target mode; the supervised stack runs in dev mode)")
	s.String(&c.user, "user", "", "demo", "bench user (dev mode creates demo/demo); every client uses its own <userId>-<suffix> queue")
	s.String(&c.password, "password", "", "demo", "bench user's password")
	s.String(&c.stackLog, "stack-log", "", "", "write the supervised stack's logs to this file")
	var genv, senv listFlag
	s.Var(&genv, "gateway-env", "extra KEY=VALUE for the gateway (repeatable), e.g. WSMQ_PREFETCH=128")
	s.Var(&senv, "stack-env", "extra KEY=VALUE for every service (repeatable)")
	s.Int(&c.publishers, "publishers", "", 4, math.MinInt, math.MaxInt, "concurrent gRPC publishers")
	s.Int(&c.pubBatch, "publish-batch", "", 50, math.MinInt, math.MaxInt, "messages per SendBatch in fanout/ack (1: unary Send)")
	s.Int(&c.unaryCallers, "unary-callers", "", 32, math.MinInt, math.MaxInt, "concurrent callers of unary Send in the unary publish mode")
	var unaryRVal string
	unaryR := &unaryRVal
	s.String(unaryR, "unary-rates", "", "0,5000", "fanout rates of the unary mode in msgs/s, comma-separated, 0 = closed loop")
	var modesVal string
	modes := &modesVal
	s.String(modes, "publish-modes", "", "unary,batch", "publish modes of fanout and ack, in order: unary (one Send per message) and batch (SendBatch)")
	s.Float(&c.rate, "rate", "", 0, -math.MaxFloat64, math.MaxFloat64, "ack publish rate limit in msgs/s (0: as fast as possible)")
	var fanRVal string
	fanR := &fanRVal
	s.String(fanR, "fanout-rates", "", "", "fanout publish rates in msgs/s, comma-separated, 0 = as fast as possible (default per mode: 0,20000)")
	s.Int(&c.pad, "pad", "", 32, math.MinInt, math.MaxInt, "padding bytes per message body (besides the stamp and sequence)")
	s.Int(&c.dialParallel, "dial-parallel", "", 64, math.MinInt, math.MaxInt, "concurrent websocket dials")
	s.Duration(&c.quiet, "quiet", "", 5*time.Second, 0, 24*time.Hour, "stop waiting for missing messages after this long without progress")
	var fanCVal string
	fanC := &fanCVal
	s.String(fanC, "fanout-clients", "", "", "fanout client counts, comma-separated (default per mode)")
	s.Int(&c.fanoutMsgs, "fanout-msgs", "", 0, math.MinInt, math.MaxInt, "messages per fanout run")
	s.Int(&c.ackClients, "ack-clients", "", 0, math.MinInt, math.MaxInt, "clients in the ack scenario")
	s.Int(&c.ackMsgs, "ack-msgs", "", 0, math.MinInt, math.MaxInt, "messages in the ack scenario")
	s.Int(&c.burstClients, "burst-clients", "", 0, math.MinInt, math.MaxInt, "clients that drain the burst")
	s.Int(&c.burstMsgs, "burst-msgs", "", 0, math.MinInt, math.MaxInt, "messages queued before the burst clients connect")
	var idleCVal string
	idleC := &idleCVal
	s.String(idleC, "idle-conns", "", "", "idle connection counts, comma-separated")
	s.Duration(&c.idleWindow, "idle-window", "", 0, 0, 24*time.Hour, "how long idle connections are watched")
	s.Int(&c.batchMsgs, "batch-msgs", "", 0, math.MinInt, math.MaxInt, "messages in the batch scenario")
	s.Int(&c.batchSize, "batch-size", "", 1000, math.MinInt, math.MaxInt, "items per SendBatch in the batch scenario")
	s.Int(&c.batchQueues, "batch-queues", "", 100, math.MinInt, math.MaxInt, "queues the batch scenario spreads over")
	s.Bool(&c.floor, "redis-floor", "", true, "run redis-benchmark against the stack's Redis")
	s.Int(&c.floorRequests, "floor-requests", "", 0, math.MinInt, math.MaxInt, "redis-benchmark -n")
	s.Bool(&c.goBench, "gobench", "", true, "also run the publisher and auth Go benchmarks (needs the source tree, -repo)")
	s.String(&c.goBenchTime, "gobench-time", "", "1s", "-benchtime of those Go benchmarks")
	s.String(&c.repo, "repo", "", "", "repository root for -gobench (default: the parent of -bin)")
	s.Bool(&c.profile, "profile", "", false, "capture the gateway's CPU profile during the first fanout (sets WSMQ_PPROF_LISTEN)")
	s.Duration(&c.profileLen, "profile-seconds", "", 10*time.Second, 0, 24*time.Hour, "length of that profile")
	s.String(&c.render, "render", "", "", "only re-render the Markdown and chart of this results JSON")
	rest, err := s.Parse(args, pkgconfig.Env{})
	if err != nil {
		return nil, err
	}
	if err := pkgconfig.NoArgs(rest); err != nil {
		return nil, err
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
		if p.fanoutRates, err = parseRates(*fanR); err != nil {
			errs = append(errs, fmt.Errorf("-fanout-rates: %w", err))
		}
	}
	if c.unaryRates, err = parseRates(*unaryR); err != nil {
		errs = append(errs, fmt.Errorf("-unary-rates: %w", err))
	}
	for m := range strings.SplitSeq(*modes, ",") {
		m = strings.TrimSpace(m)
		if m != "unary" && m != "batch" {
			errs = append(errs, fmt.Errorf("-publish-modes: %q is neither unary nor batch", m))
			continue
		}
		c.pubModes = append(c.pubModes, m)
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
	for name, v := range map[string]int{"-publishers": c.publishers, "-unary-callers": c.unaryCallers, "-publish-batch": c.pubBatch, "-dial-parallel": c.dialParallel, "-batch-size": c.batchSize, "-batch-queues": c.batchQueues} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s: %d must be at least 1", name, v))
		}
	}
	if c.pad < 0 || c.rate < 0 {
		errs = append(errs, errors.New("-pad and -rate must not be negative"))
	}
	return c, errors.Join(errs...)
}
