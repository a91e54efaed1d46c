package main

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/publisher/internal/publishertest"
)

// TestHTTPAPIEndToEndScriptPassesAgainstTheBinary runs
// scripts/http-api-e2e.sh (curl and jq) against the real publisher binary,
// so `make test` covers it.
func TestHTTPAPIEndToEndScriptPassesAgainstTheBinary(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the end-to-end script needs %s: %v", tool, err)
		}
	}
	r := testenv.StartRedis(t)
	httpAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	publishertest.Start(t, r.URL(), map[string]string{
		"WSMQ_PUBLISHER_HTTP_LISTEN":     httpAddr,
		"WSMQ_PUBLISHER_ADMIN_KEYS":      adminKey,
		"WSMQ_PUBLISHER_RECEIPTS_STREAM": "1",
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../scripts/http-api-e2e.sh")
	cmd.Env = append(cmd.Environ(), "WSMQ_HTTP=http://"+httpAddr, "WSMQ_KEY="+publishertest.Key, "WSMQ_ADMIN_KEY="+adminKey)
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if err != nil || !strings.HasSuffix(last, " passed, 0 failed") || strings.HasPrefix(last, "0 passed") {
		t.Fatalf("script: %v\n%s", err, out)
	}
	t.Log(last)
}
