package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Latency summarises publish→receive latencies, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// percentile returns the nearest-rank percentile p (0..100) of sorted
// values; 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summarize sorts samples in place and returns their percentiles; nil when
// there are none.
func summarize(samples []time.Duration) *Latency {
	if len(samples) == 0 {
		return nil
	}
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return &Latency{
		Count: len(samples),
		P50:   ms(percentile(samples, 50)),
		P90:   ms(percentile(samples, 90)),
		P99:   ms(percentile(samples, 99)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// parseCommandStats reads the "cmdstat_<name>:calls=N,usec=U,..." lines of
// INFO commandstats into name → calls.
func parseCommandStats(info string) (map[string]int64, error) {
	return parseCommandField(info, "calls")
}

// parseCommandUsec reads name → usec (microseconds spent in the command;
// a script's usec includes the commands it runs) from INFO commandstats.
func parseCommandUsec(info string) (map[string]int64, error) {
	return parseCommandField(info, "usec")
}

func parseCommandField(info, key string) (map[string]int64, error) {
	out := map[string]int64{}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			if k != key {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("commandstats: %q: bad %s value %q", name, key, v)
			}
			out[strings.TrimPrefix(name, "cmdstat_")] = n
		}
	}
	return out, nil
}

// benchOwnCommands are commands the bench itself sends to Redis to observe
// it; they are left out of the deltas.
var benchOwnCommands = map[string]bool{"info": true, "hello": true, "client|setinfo": true, "client|setname": true}

// commandDelta returns after-before per command (own commands left out,
// zero deltas dropped) and the total.
func commandDelta(before, after map[string]int64) (map[string]int64, int64) {
	out := map[string]int64{}
	var total int64
	for name, n := range after {
		if benchOwnCommands[name] {
			continue
		}
		if d := n - before[name]; d > 0 {
			out[name] = d
			total += d
		}
	}
	return out, total
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux
// for every architecture Go supports).
const clockTicks = 100

// procCPU returns the user+system CPU seconds used so far by pid.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(b))
}

// parseProcStatCPU reads utime+stime (fields 14 and 15) of a /proc/<pid>/stat line.
func parseProcStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command field in %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: too few fields in %q", stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// procRSSKB returns VmRSS of pid in KiB.
func procRSSKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("proc status of %d: no VmRSS", pid)
}
