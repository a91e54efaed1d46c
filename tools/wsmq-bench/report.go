package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Result is one scenario run. Fields that do not apply are omitted from the JSON.
type Result struct {
	Scenario     string  `json:"scenario"` // fanout, ack, burst, idle, batch
	Name         string  `json:"name"`     // e.g. fanout-1000
	Clients      int     `json:"clients,omitempty"`
	Messages     int     `json:"messages,omitempty"`
	PublishMode  string  `json:"publish_mode,omitempty"` // fanout, ack: unary or batch
	Publishers   int     `json:"publishers,omitempty"`
	PublishBatch int     `json:"publish_batch,omitempty"`
	RatePerSec   float64 `json:"rate_limit_per_sec,omitempty"`

	DurationSec   float64  `json:"duration_sec"` // first publish (burst: first connect) to last receive
	MsgsPerSec    float64  `json:"msgs_per_sec,omitempty"`
	PublishPerSec float64  `json:"publish_msgs_per_sec,omitempty"`
	Latency       *Latency `json:"latency,omitempty"`
	Delivered     int64    `json:"delivered,omitempty"`
	Lost          int64    `json:"lost"`
	Duplicated    int64    `json:"duplicated"`
	Foreign       int64    `json:"foreign,omitempty"`
	DrainSec      float64  `json:"drain_sec,omitempty"`

	ConnectSec         float64 `json:"connect_sec,omitempty"`
	ConnectPerSec      float64 `json:"connect_per_sec,omitempty"`
	GatewayRSSBeforeKB int64   `json:"gateway_rss_before_kb,omitempty"`
	GatewayRSSAfterKB  int64   `json:"gateway_rss_after_kb,omitempty"`
	RSSPerConnKB       float64 `json:"gateway_rss_per_conn_kb,omitempty"`
	RedisPerSec        float64 `json:"redis_cmds_per_sec,omitempty"`
	RedisPerSecPerSub  float64 `json:"redis_cmds_per_sec_per_sub,omitempty"`
	// Per idle connection, from the gateway's pprof listener (when it has one):
	// goroutines, heap_inuse_kb, stack_inuse_kb.
	GatewayPerConn map[string]float64 `json:"gateway_per_conn,omitempty"`
	HeapProfile    *Profile           `json:"heap_profile,omitempty"`

	RedisCommands  int64            `json:"redis_cmds"`
	RedisPerMsg    float64          `json:"redis_cmds_per_msg,omitempty"`
	RedisByCommand map[string]int64 `json:"redis_cmds_by_command,omitempty"`
	// Microseconds Redis spent per command (a script's time includes the commands it runs).
	RedisUsecByCommand map[string]int64   `json:"redis_usec_by_command,omitempty"`
	CPU                map[string]float64 `json:"cpu_sec,omitempty"` // process → CPU seconds in the window
	// CPU microseconds per delivered message, per process (CPU / Delivered).
	CPUPerMsg map[string]float64 `json:"cpu_usec_per_msg,omitempty"`
	// Commands the gateway itself sent (its wsmq_gateway_redis_commands_total):
	// no script-internal commands; a pipeline's commands count one each.
	GatewayCalls       int64            `json:"gateway_redis_calls,omitempty"`
	GatewayCallsPerMsg float64          `json:"gateway_redis_calls_per_msg,omitempty"`
	GatewayByCommand   map[string]int64 `json:"gateway_redis_calls_by_command,omitempty"`

	Notes []string `json:"notes,omitempty"`
	Error string   `json:"error,omitempty"`
}

func (r Result) fail(err error) Result {
	r.Error = err.Error()
	return r
}

// fill sets the delivery figures from a tracker and the window's usage.
func (r *Result) fill(tr *tracker, u usage, start, last time.Time) {
	r.Delivered = tr.unique.Load()
	r.Lost = int64(tr.expected) - r.Delivered
	r.Duplicated = tr.dups.Load()
	r.Foreign = tr.foreign.Load()
	if !last.IsZero() {
		d := last.Sub(start).Seconds()
		r.DurationSec = round(d, 3)
		if d > 0 {
			r.MsgsPerSec = round(float64(r.Delivered)/d, 0)
		}
	}
	r.CPU = u.cpu
	r.RedisCommands = u.total
	r.RedisByCommand = u.commands
	r.RedisUsecByCommand = u.usec
	r.GatewayCalls, r.GatewayByCommand = u.gwTotal, u.gateway
	if r.Delivered > 0 {
		r.RedisPerMsg = round(float64(u.total)/float64(r.Delivered), 3)
		r.GatewayCallsPerMsg = round(float64(u.gwTotal)/float64(r.Delivered), 3)
		r.CPUPerMsg = map[string]float64{}
		for p, sec := range u.cpu {
			r.CPUPerMsg[p] = round(sec*1e6/float64(r.Delivered), 1)
		}
	}
}

// FloorResult is one redis-benchmark line.
type FloorResult struct {
	Test           string  `json:"test"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	P50ms          float64 `json:"p50_ms,omitempty"`
}

// GoBench is one Go benchmark's line.
type GoBench struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	N       int64              `json:"n"`
	Metrics map[string]float64 `json:"metrics"` // unit → value (ns/op, msgs/s, ...)
}

// Profile is the gateway CPU profile taken during one scenario.
type Profile struct {
	Scenario string `json:"scenario"`
	File     string `json:"file"`
	Seconds  int    `json:"seconds"`
	Top      string `json:"top,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpu_model"`
	MemoryMB     int64  `json:"memory_mb"`
	Kernel       string `json:"kernel,omitempty"`
	Go           string `json:"go"`
	Redis        string `json:"redis,omitempty"`
	OpenFilesMax uint64 `json:"open_files_limit"`
}

// Report is a whole bench run: what bench/results/<date>.json holds.
type Report struct {
	Date         string        `json:"date"`
	Mode         string        `json:"mode"`
	Command      string        `json:"command"`
	Machine      Machine       `json:"machine"`
	GatewayEnv   []string      `json:"gateway_env,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
	Results      []Result      `json:"results"`
	RedisFloor   []FloorResult `json:"redis_floor,omitempty"`
	RedisFloorCm string        `json:"redis_floor_command,omitempty"`
	GoBench      []GoBench     `json:"go_bench,omitempty"`
	GoBenchError string        `json:"go_bench_error,omitempty"`
	Profile      *Profile      `json:"profile,omitempty"`
	TotalSec     float64       `json:"total_sec"`
}

// JSON renders the report, indented.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// goal is one of the issues' targets, checked against the results it names.
type goal struct {
	scenario string
	mode     string  // publish mode ("": any)
	paced    float64 // -1: any pace; 0: closed loop only; else that rate only
	size     int     // clients (fanout, idle) or messages (burst)
	what     string
	value    func(Result) (float64, bool)
	limit    float64
	atLeast  bool
	unit     string
}

// The unary goals are the fast-path issue's (beside a pub/sub server on
// the same box); the batch ones the earlier delivery targets.
var goals = []goal{
	{"fanout", "unary", 0, 1000, "delivered msgs/s", msgsPerSec, 15000, true, "msgs/s"},
	{"fanout", "unary", 0, 1000, "latency p50", latP50, 2.5, false, "ms"},
	{"fanout", "unary", 0, 1000, "latency p99", latP99, 8, false, "ms"},
	{"fanout", "unary", 5000, 1000, "latency p50", latP50, 0.5, false, "ms"},
	{"fanout", "unary", 5000, 1000, "latency p99", latP99, 5, false, "ms"},
	{"fanout", "unary", 0, 1000, "CPU per msg, Redis + publisher + gateway", cpuOf("redis", "publisher", "gateway"), 70, false, "µs"},
	{"fanout", "unary", 0, 1000, "CPU per msg, Redis", cpuOf("redis"), 20, false, "µs"},
	{"fanout", "plain", -1, 100, "latency p99, sender without realtime (plain Node rsmq)", latP99, 50, false, "ms"},
	{"fanout", "", -1, 1000, "lost", func(r Result) (float64, bool) { return float64(r.Lost), r.Error == "" }, 0, false, "msgs"},
	{"fanout", "batch", 0, 1000, "delivered msgs/s", msgsPerSec, 20000, true, "msgs/s"},
	{"fanout", "batch", 0, 1000, "latency p99", latP99, 10, false, "ms"},
	{"idle", "", -1, 10000, "gateway RSS per connection", func(r Result) (float64, bool) { return r.RSSPerConnKB, r.RSSPerConnKB != 0 }, 24, false, "KB"},
	{"idle", "", -1, 10000, "Redis commands/s per subscription", func(r Result) (float64, bool) { return r.RedisPerSecPerSub, r.Error == "" }, 0.2, false, "/s"},
	{"burst", "", -1, 100000, "drain time", func(r Result) (float64, bool) { return r.DrainSec, r.DrainSec > 0 }, 8, false, "s"},
}

// applies reports whether res is a run the goal is about (any size).
func (g goal) applies(res Result) bool {
	if res.Scenario != g.scenario || (g.mode != "" && res.PublishMode != g.mode) {
		return false
	}
	if g.paced >= 0 && res.RatePerSec != g.paced {
		return false
	}
	_, ok := g.value(res)
	return ok
}

func msgsPerSec(r Result) (float64, bool) { return r.MsgsPerSec, r.MsgsPerSec > 0 }

func latP50(r Result) (float64, bool) {
	if r.Latency == nil {
		return 0, false
	}
	return r.Latency.P50, true
}

// cpuOf sums the CPU µs per message of the named processes.
func cpuOf(procs ...string) func(Result) (float64, bool) {
	return func(r Result) (float64, bool) {
		var sum float64
		for _, p := range procs {
			v, ok := r.CPUPerMsg[p]
			if !ok {
				return 0, false
			}
			sum += v
		}
		return round(sum, 1), true
	}
}

func latP99(r Result) (float64, bool) {
	if r.Latency == nil {
		return 0, false
	}
	return r.Latency.P99, true
}

func (g goal) size_(r Result) int {
	if g.scenario == "burst" {
		return r.Messages
	}
	return r.Clients
}

// Markdown renders the report as the summary written next to the JSON.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# wsmq benchmark, %s (%s)\n\n", r.Date, r.Mode)
	w("Command: `%s`  \n", r.Command)
	m := r.Machine
	w("Machine: %d CPUs (%s), %d MB RAM, %s, %s, Redis %s, open files %d  \n", m.CPUs, m.CPUModel, m.MemoryMB, m.Kernel, m.Go, m.Redis, m.OpenFilesMax)
	if len(r.GatewayEnv) > 0 {
		w("Gateway settings: `%s`  \n", strings.Join(r.GatewayEnv, " "))
	}
	w("Total run time: %.1f s\n\n", r.TotalSec)
	for _, n := range r.Notes {
		w("- %s\n", n)
	}
	if len(r.Notes) > 0 {
		w("\n")
	}

	w("## Targets\n\n| target | scenario | measured | goal | met |\n|---|---|---|---|---|\n")
	for _, g := range goals {
		var cands []Result
		exact := false
		for _, res := range r.Results {
			if !g.applies(res) {
				continue
			}
			cands = append(cands, res)
			exact = exact || g.size_(res) == g.size
		}
		for _, res := range cands {
			if exact && g.size_(res) != g.size {
				continue
			}
			v, _ := g.value(res)
			met := v <= g.limit
			cmp := "≤"
			if g.atLeast {
				met, cmp = v >= g.limit, "≥"
			}
			verdict := map[bool]string{true: "yes", false: "**no**"}[met]
			if g.size_(res) != g.size {
				verdict += fmt.Sprintf(" (size %d, goal is for %d)", g.size_(res), g.size)
			}
			w("| %s | %s | %s %s | %s %s %s | %s |\n", g.what, res.Name, num(v), g.unit, cmp, num(g.limit), g.unit, verdict)
		}
	}
	w("\n## Delivery\n\n| scenario | publish | clients | messages | msgs/s | publish msgs/s | p50 ms | p90 ms | p99 ms | max ms | lost | dup | Redis cmds/msg | gateway calls/msg | CPU µs/msg (gateway / publisher / redis / bench) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, res := range r.Results {
		if res.Scenario == "idle" {
			continue
		}
		p50, p90, p99, mx := "–", "–", "–", "–"
		if l := res.Latency; l != nil {
			p50, p90, p99, mx = num(l.P50), num(l.P90), num(l.P99), num(l.Max)
		}
		lost, dup := fmt.Sprint(res.Lost), fmt.Sprint(res.Duplicated)
		if res.Scenario == "batch" {
			lost, dup = "–", "–"
		}
		name := res.Name
		if res.Error != "" {
			name += " (failed)"
		}
		gw := "–"
		if res.GatewayByCommand != nil && res.Scenario != "batch" {
			gw = num(res.GatewayCallsPerMsg)
		}
		w("| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, publishOf(res), res.Clients, res.Messages,
			num(res.MsgsPerSec), num(res.PublishPerSec), p50, p90, p99, mx, lost, dup, num(res.RedisPerMsg), gw, cpus(res.CPUPerMsg))
	}

	idle := false
	for _, res := range r.Results {
		if res.Scenario == "idle" {
			if !idle {
				w("\n## Idle connections\n\n| scenario | connections | connect/s | gateway RSS before → after (MB) | RSS per conn (KB) | Redis cmds/s | per subscription | window s | CPU s (gateway / publisher / redis / bench) |\n|---|---|---|---|---|---|---|---|---|\n")
				idle = true
			}
			w("| %s | %d | %s | %.1f → %.1f | %s | %s | %s | %s | %s |\n", res.Name, res.Clients, num(res.ConnectPerSec),
				float64(res.GatewayRSSBeforeKB)/1024, float64(res.GatewayRSSAfterKB)/1024, num(res.RSSPerConnKB),
				num(res.RedisPerSec), num(res.RedisPerSecPerSub), num(res.DurationSec), cpus(res.CPU))
		}
	}
	for _, res := range r.Results {
		if g := res.GatewayPerConn; g != nil {
			w("\n%s, per connection inside the gateway (Go runtime, via pprof): %s goroutines, %s KB heap in use, %s KB goroutine stacks.\n",
				res.Name, num(g["goroutines"]), num(g["heap_inuse_kb"]), num(g["stack_inuse_kb"]))
		}
	}

	if len(r.RedisFloor) > 0 {
		w("\n## Redis floor (same machine)\n\n`%s`\n\n| test | requests/s | p50 ms |\n|---|---|---|\n", r.RedisFloorCm)
		for _, f := range r.RedisFloor {
			w("| %s | %s | %s |\n", f.Test, num(f.RequestsPerSec), num(f.P50ms))
		}
	}

	if len(r.GoBench) > 0 || r.GoBenchError != "" {
		w("\n## Go benchmarks (publisher, auth)\n\n")
		if r.GoBenchError != "" {
			w("Not collected: %s\n\n", r.GoBenchError)
		}
		if len(r.GoBench) > 0 {
			w("| package | benchmark | figures |\n|---|---|---|\n")
			for _, g := range r.GoBench {
				var parts []string
				for _, unit := range sortedKeys(g.Metrics) {
					parts = append(parts, num(g.Metrics[unit])+" "+unit)
				}
				w("| %s | %s | %s |\n", g.Package, g.Name, strings.Join(parts, ", "))
			}
		}
	}

	w("\n## Redis commands by scenario\n\n")
	w("Redis-side counts (INFO commandstats deltas) include the commands run inside Lua scripts and MULTI blocks, so they are higher than round trips. ")
	w("\"gateway calls\" are the commands the gateway sent (its own metric): scripts count once, a pipeline's commands count one each.\n\n")
	for _, res := range r.Results {
		if len(res.RedisByCommand) == 0 {
			continue
		}
		per := "per message"
		div := float64(res.Delivered)
		switch res.Scenario {
		case "batch":
			div = float64(res.Messages)
		case "idle":
			per, div = "per second per subscription", res.DurationSec*float64(res.Clients)
		}
		type kv struct {
			k string
			v int64
		}
		var list []kv
		for k, v := range res.RedisByCommand {
			list = append(list, kv{k, v})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].v > list[j].v || list[i].v == list[j].v && list[i].k < list[j].k })
		var parts []string
		for _, x := range list {
			if div > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", x.k, num(round(float64(x.v)/div, 4))))
			} else {
				parts = append(parts, fmt.Sprintf("%s %d", x.k, x.v))
			}
		}
		w("- **%s** (%s): %s\n", res.Name, per, strings.Join(parts, ", "))
		if len(res.RedisUsecByCommand) > 0 && div > 0 && res.Scenario != "idle" {
			w("  - Redis time per message: %s\n", usecLine(res.RedisUsecByCommand, div))
		}
		if len(res.GatewayByCommand) > 0 && res.Delivered > 0 {
			var gparts []string
			for _, k := range sortedKeys(res.GatewayByCommand) {
				gparts = append(gparts, fmt.Sprintf("%s %s", k, num(round(float64(res.GatewayByCommand[k])/float64(res.Delivered), 4))))
			}
			w("  - gateway calls per message: %s\n", strings.Join(gparts, ", "))
		}
	}

	var notes []string
	for _, res := range r.Results {
		if res.Error != "" {
			notes = append(notes, fmt.Sprintf("**%s failed**: %s", res.Name, res.Error))
		}
		for _, n := range res.Notes {
			notes = append(notes, fmt.Sprintf("%s: %s", res.Name, n))
		}
	}
	if len(notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range notes {
			w("- %s\n", n)
		}
	}

	for _, res := range r.Results {
		if p := res.HeapProfile; p != nil {
			w("\n## Gateway heap in use (%s)\n\nFile: `%s`\n\n```\n%s```\n", res.Name, p.File, p.Top)
		}
	}
	if p := r.Profile; p != nil {
		w("\n## Gateway CPU profile (%s, %d s)\n\n", p.Scenario, p.Seconds)
		if p.Error != "" {
			w("Not taken: %s\n", p.Error)
		} else {
			w("File: `%s`\n\n```\n%s```\n", p.File, p.Top)
		}
	}
	return b.String()
}

// usecLine renders the costliest commands' Redis time per message (µs),
// top-level commands (scripts, PUBLISH, ...) first as they include what they run.
func usecLine(usec map[string]int64, div float64) string {
	names := sortedKeys(usec)
	sort.SliceStable(names, func(i, j int) bool { return usec[names[i]] > usec[names[j]] })
	var parts []string
	for i, k := range names {
		if i == 6 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s µs", k, num(round(float64(usec[k])/div, 2))))
	}
	return strings.Join(parts, ", ") + " (a script's time includes the commands it runs)"
}

// publishOf describes how a result's messages were published.
func publishOf(r Result) string {
	switch {
	case r.PublishMode == "plain":
		return fmt.Sprintf("rsmq, no realtime ×%d", r.Publishers)
	case r.PublishMode == "unary":
		return fmt.Sprintf("unary ×%d", r.Publishers)
	case r.PublishBatch > 0:
		return fmt.Sprintf("batch %d ×%d", r.PublishBatch, r.Publishers)
	}
	return "–"
}

// cpus renders a per-process figure of the main processes.
func cpus(c map[string]float64) string {
	if len(c) == 0 {
		return "–"
	}
	var parts []string
	for _, name := range []string{"gateway", "publisher", "redis", "bench"} {
		if v, ok := c[name]; ok {
			parts = append(parts, num(v))
		} else {
			parts = append(parts, "?")
		}
	}
	return strings.Join(parts, " / ")
}

// num formats a figure compactly: thousands separated, at most 3 decimals.
func num(v float64) string {
	if v == float64(int64(v)) {
		s := fmt.Sprintf("%d", int64(v))
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var out []byte
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		if neg {
			return "-" + string(out)
		}
		return string(out)
	}
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
