package jssdk_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/wsmq/wsmq/pkg/testenv"
)

// The SDK's size budget (README.md of clients/js): gzipped at the best
// compression, and raw.
const (
	gzipBudget = 8 << 10
	rawBudget  = 32 << 10
)

// TestJSPackagingOneFileNoImportsTypesCheckWithinBudget is acceptance 10:
// index.js imports nothing, exports the client and the error types,
// index.d.ts type-checks against a consumer (tsc --strict, Debian's
// node-typescript), the file is within its size budget, and the gateway's
// embedded copy (the demo page's /demo/wsmq.js) is the canonical file.
func TestJSPackagingOneFileNoImportsTypesCheckWithinBudget(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, "clients", "js")
	src, err := os.ReadFile(filepath.Join(dir, "index.js"))
	if err != nil {
		t.Fatal(err)
	}

	imports := regexp.MustCompile(`(?m)^\s*import[\s{*"']|\bimport\s*\(|\brequire\s*\(|^\s*export\s+(\*|\{[^}]*\})\s*from`)
	if m := imports.Find(src); m != nil {
		t.Errorf("index.js imports %q: the SDK is one file without dependencies", m)
	}

	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = w.Write(src)
	_ = w.Close()
	t.Logf("index.js: %d bytes, %d gzipped (budget %d gzipped, %d raw)", len(src), gz.Len(), gzipBudget, rawBudget)
	if gz.Len() > gzipBudget || len(src) > rawBudget {
		t.Errorf("index.js is %d bytes (%d gzipped): over its budget of %d (%d gzipped)", len(src), gz.Len(), rawBudget, gzipBudget)
	}

	embedded, err := os.ReadFile(filepath.Join(root, "services", "gateway", "internal", "server", "wsmq.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(embedded, src) {
		t.Error("services/gateway/internal/server/wsmq.js differs from clients/js/index.js: run go generate ./services/gateway/internal/server")
	}

	node := testenv.LookPath(t, "node", "apt-get install -y nodejs")
	check := exec.Command(node, "--input-type=module", "-e", `
import * as m from "./index.js";
const want = ["WsmqClient", "ticketCredentials", "closeAction", "websocketURL", "CloseCodes", "CloseWatchdog",
  "WsmqError", "UnauthorizedError", "ForbiddenError", "RateLimitedError", "CloseError", "GatewayError"];
const missing = want.filter((k) => !(k in m));
if (missing.length) { console.error("missing exports: " + missing.join(", ")); process.exit(1); }
for (const k of ["UnauthorizedError", "ForbiddenError", "RateLimitedError", "CloseError", "GatewayError"]) {
  if (!(m[k].prototype instanceof m.WsmqError)) { console.error(k + " is not a WsmqError"); process.exit(1); }
}
// Without a global WebSocket (Node 20 without the flag) the constructor says what to pass.
try { new m.WsmqClient({ url: "ws://127.0.0.1:1" }); console.error("no error without WebSocket"); process.exit(1); }
catch (e) { if (!/options.WebSocket/.test(e.message)) { console.error(e.message); process.exit(1); } }
`)
	check.Dir = dir
	check.Env = append(os.Environ(), "NODE_OPTIONS=") // no --experimental-websocket: the check above needs no global WebSocket
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("loading index.js in node: %v\n%s", err, out)
	}

	tsc := testenv.LookPath(t, "tsc", "apt-get install -y node-typescript (scripts/deps.sh with WSMQ_DEPS_CI=1)")
	cmd := exec.Command(tsc, "-p", filepath.Join(dir, "test", "tsconfig.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("tsc: index.d.ts does not type-check against test/consumer.ts: %v\n%s", err, out)
	}
}
