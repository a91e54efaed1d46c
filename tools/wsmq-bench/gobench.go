package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchmarks are the Go benchmarks whose figures the issues ask for in
// `make bench`: publisher Send/SendBatch (msgs/s, Redis round trips per
// message), unary Send over gRPC beside HTTP (msgs/s, p50/p99 from the
// same 32 callers), the per-message Redis cost of delivery status and the
// receipts stream, and auth Verify (JWT path, access-token path).
var goBenchmarks = []struct{ pkg, pattern string }{
	{"./services/publisher", "^Benchmark(Send|SendBatch|UnarySend)$"},
	{"./pkg/rsmq", "^BenchmarkDeliveryCycle$"},
	{"./services/auth/internal/server", "^Benchmark(VerifyJWT|VerifyAccessToken)$"},
}

// runGoBench runs those benchmarks in the repository at repo and parses
// their figures.
func runGoBench(ctx context.Context, repo, benchtime string) ([]GoBench, error) {
	var out []GoBench
	for _, b := range goBenchmarks {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", b.pattern, "-benchtime", benchtime, b.pkg)
		cmd.Dir = repo
		raw, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("go test -bench %s: %w: %s", b.pkg, err, tail(string(raw), 800))
		}
		out = append(out, parseGoBench(string(raw))...)
	}
	return out, nil
}

// parseGoBench reads `go test -bench` output: "pkg:" lines and benchmark
// lines "BenchmarkX-2  N  v unit  v unit ...".
func parseGoBench(out string) []GoBench {
	var res []GoBench
	pkg := ""
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		g := GoBench{Package: pkg, Name: f[0], N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			g.Metrics[f[i+1]] = v
		}
		res = append(res, g)
	}
	return res
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
