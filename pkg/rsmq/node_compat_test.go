package rsmq_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// nodeRSMQ runs Node rsmq operations against the test's Redis. The cross
// check is manual (it needs `npm install rsmq@0.12.4`, which CI does not
// do): set WSMQ_RSMQ_NODE_DIR to a directory holding node_modules/rsmq.
type nodeRSMQ struct {
	t    *testing.T
	dir  string
	port string
}

func newNodeRSMQ(t *testing.T, e *env) *nodeRSMQ {
	t.Helper()
	dir := os.Getenv("WSMQ_RSMQ_NODE_DIR")
	if dir == "" {
		t.Skip("Node rsmq cross-check is manual: npm install rsmq@0.12.4 in a temp dir and set WSMQ_RSMQ_NODE_DIR to it")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("WSMQ_RSMQ_NODE_DIR set but node missing: %v", err)
	}
	n := &nodeRSMQ{t: t, dir: dir}
	if e != nil { // nil: the caller sets the port (a node it starts later)
		_, n.port, _ = strings.Cut(e.redis.Addr(), ":")
	}
	return n
}

// call runs op with opts and returns the JSON result, or the rsmq error name.
func (n *nodeRSMQ) call(op string, opts map[string]any) (json.RawMessage, string) {
	n.t.Helper()
	script, err := filepath.Abs("testdata/node_rsmq.js")
	if err != nil {
		n.t.Fatal(err)
	}
	arg, _ := json.Marshal(opts)
	cmd := exec.Command("node", script, n.port, "rsmq", "1", op, string(arg))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(n.dir, "node_modules"))
	out, err := cmd.Output()
	if err != nil {
		n.t.Fatalf("node %s: %v\n%s", op, err, out)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	}
	// Only the first line: rsmq logs script-load failures to stdout when it
	// quits before connecting (validation errors answer synchronously).
	first, _, _ := strings.Cut(string(out), "\n")
	if err := json.Unmarshal([]byte(first), &r); err != nil {
		n.t.Fatalf("node %s printed %q: %v", op, out, err)
	}
	return r.Result, r.Error
}

type nodeMessage struct {
	ID      string  `json:"id"`
	Message string  `json:"message"`
	RC      int64   `json:"rc"`
	FR      int64   `json:"fr"`
	Sent    float64 `json:"sent"`
}

func TestNodeRSMQReadsAndWritesTheSameQueues(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	node := newNodeRSMQ(t, e)
	body := "from go: ü 😀 \u2028 \"quoted\""

	// Go writes, Node reads.
	e.createQueue(t, "goq", 30)
	goID := e.send(t, "goq", body)
	res, errName := node.call("receiveMessage", map[string]any{"qname": "goq"})
	var nm nodeMessage
	if errName != "" || json.Unmarshal(res, &nm) != nil {
		t.Fatalf("node receiveMessage: %s %s", res, errName)
	}
	if nm.ID != goID || nm.Message != body || nm.RC != 1 || int64(math.Floor(nm.Sent)) != sentMS(goID) {
		t.Fatalf("node received %+v, want id %s body %q", nm, goID, body)
	}
	// Go sees Node's receive (rc, fr) and continues the count.
	if _, err := e.q.ChangeMessageVisibility(e.ctx, "goq", goID, 0); err != nil {
		t.Fatal(err)
	}
	m := e.receive(t, "goq", 30)
	if m == nil || m.ID != goID || m.RC != 2 || m.FR != nm.FR {
		t.Fatalf("go received %+v after node (fr %d)", m, nm.FR)
	}
	res, _ = node.call("getQueueAttributes", map[string]any{"qname": "goq"})
	var attrs map[string]int64
	_ = json.Unmarshal(res, &attrs)
	if attrs["vt"] != 30 || attrs["totalsent"] != 1 || attrs["totalrecv"] != 2 || attrs["msgs"] != 1 {
		t.Fatalf("node attributes of a go queue: %s", res)
	}
	// A Go return undoes Go's receive: Node sees the count Node left.
	if n, _, err := e.q.ReturnByReceipts(e.ctx, "goq", []rsmq.Receipt{m.Receipt()}); err != nil || n != 1 {
		t.Fatalf("ReturnByReceipts = %d, %v", n, err)
	}
	res, _ = node.call("receiveMessage", map[string]any{"qname": "goq", "vt": 0})
	if json.Unmarshal(res, &nm) != nil || nm.ID != goID || nm.RC != 2 {
		t.Fatalf("node received %s after a go return, want rc 2", res)
	}
	if res, _ := node.call("deleteMessage", map[string]any{"qname": "goq", "id": goID}); string(res) != "1" {
		t.Fatalf("node deleteMessage = %s", res)
	}

	// Node writes, Go reads.
	if _, errName := node.call("createQueue", map[string]any{"qname": "nodeq", "maxsize": 1024}); errName != "" {
		t.Fatal(errName)
	}
	res, _ = node.call("sendMessage", map[string]any{"qname": "nodeq", "message": body})
	var nodeID string
	_ = json.Unmarshal(res, &nodeID)
	if err := rsmq.ValidateID(nodeID); err != nil {
		t.Fatalf("node id %q: %v", nodeID, err)
	}
	m = e.receive(t, "nodeq", 0)
	if m == nil || m.ID != nodeID || m.Message != body || m.RC != 1 || m.Sent != sentMS(nodeID) {
		t.Fatalf("go received %+v, want node's %s", m, nodeID)
	}
	res, _ = node.call("popMessage", map[string]any{"qname": "nodeq"})
	_ = json.Unmarshal(res, &nm)
	if nm.ID != nodeID || nm.RC != 2 || nm.FR != m.FR {
		t.Fatalf("node popped %+v after go's receive %+v", nm, m)
	}

	// Same length rule: UTF-16 code units against maxsize 1024.
	for _, msg := range []string{strings.Repeat("😀", 512), strings.Repeat("😀", 513), strings.Repeat("é", 1024), strings.Repeat("a", 1025)} {
		_, nodeErr := node.call("sendMessage", map[string]any{"qname": "nodeq", "message": msg})
		_, goErr := e.q.SendMessage(e.ctx, "nodeq", msg, 0)
		if nodeErr != rsmq.ErrorName(goErr) {
			t.Fatalf("message of %d bytes: node %q, go %v", len(msg), nodeErr, goErr)
		}
	}
	// Same error names.
	for _, c := range []struct {
		op   string
		opts map[string]any
		goFn func() error
	}{
		{"sendMessage", map[string]any{"qname": "missing", "message": "x"}, func() error { _, err := e.q.SendMessage(e.ctx, "missing", "x", 0); return err }},
		{"createQueue", map[string]any{"qname": "nodeq"}, func() error { return e.q.CreateQueue(e.ctx, "nodeq", rsmq.DefaultQueueConfig()) }},
		{"createQueue", map[string]any{"qname": "x", "vt": 10000000}, func() error {
			return e.q.CreateQueue(e.ctx, "x", rsmq.QueueConfig{VT: 10000000, MaxSize: 65536})
		}},
		{"receiveMessage", map[string]any{"qname": "a.b"}, func() error { _, err := e.q.ReceiveMessage(e.ctx, "a.b", 0); return err }},
		{"deleteMessage", map[string]any{"qname": "nodeq", "id": "short"}, func() error { _, err := e.q.DeleteMessage(e.ctx, "nodeq", "short"); return err }},
		{"setQueueAttributes", map[string]any{"qname": "nodeq"}, func() error {
			_, err := e.q.SetQueueAttributes(e.ctx, "nodeq", rsmq.AttributeChanges{})
			return err
		}},
	} {
		_, nodeErr := node.call(c.op, c.opts)
		if goErr := c.goFn(); nodeErr == "" || nodeErr != rsmq.ErrorName(goErr) {
			t.Errorf("%s %v: node %q, go %v", c.op, c.opts, nodeErr, goErr)
		}
	}
	var qs []string
	res, _ = node.call("listQueues", nil)
	_ = json.Unmarshal(res, &qs)
	if len(qs) != 2 {
		t.Fatalf("node listQueues = %v", qs)
	}
	if err := e.q.DeleteQueue(e.ctx, "goq"); err != nil {
		t.Fatal(err)
	}
}

func sentMS(id string) int64 {
	us, _ := strconv.ParseInt(id[:10], 36, 64)
	return us / 1000
}

// TestNodeRSMQReadsATTLMessageAndItsDeleteLeavesOnlyTheExpiry: a message
// Go sent with a ttl, in a queue with wsmq's expiry and status fields, is an
// ordinary message to Node; Node's deleteMessage leaves exactly "<id>:exp",
// which SweepExpiryOrphans removes.
func TestNodeRSMQReadsATTLMessageAndItsDeleteLeavesOnlyTheExpiry(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	node := newNodeRSMQ(t, e)
	on := rsmq.New(e.raw, rsmq.Options{StatusTTL: time.Hour})
	e.createQueue(t, "ttlq", 30)
	if err := e.q.SetExpiredAction(e.ctx, "ttlq", rsmq.ExpiredDelete); err != nil {
		t.Fatal(err)
	}
	id, err := on.SendItem(e.ctx, rsmq.SendItem{Queue: "ttlq", Message: "short-lived", Delay: rsmq.QueueDefault, TTL: 600})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := node.call("getQueueAttributes", map[string]any{"qname": "ttlq"})
	var attrs map[string]int64
	if json.Unmarshal(res, &attrs) != nil || attrs["msgs"] != 1 || attrs["vt"] != 30 {
		t.Fatalf("node attributes of a queue with wsmq fields: %s", res)
	}
	res, errName := node.call("receiveMessage", map[string]any{"qname": "ttlq"})
	var nm nodeMessage
	if errName != "" || json.Unmarshal(res, &nm) != nil || nm.ID != id || nm.Message != "short-lived" || nm.RC != 1 {
		t.Fatalf("node received %s %s, want %s", res, errName, id)
	}
	if res, _ := node.call("deleteMessage", map[string]any{"qname": "ttlq", "id": id}); string(res) != "1" {
		t.Fatalf("node deleteMessage = %s", res)
	}
	left, _ := e.raw.HKeys(e.ctx, "rsmq:ttlq:Q").Result()
	var msgFields []string
	for _, f := range left {
		if strings.HasPrefix(f, id) {
			msgFields = append(msgFields, f)
		}
	}
	if len(msgFields) != 1 || msgFields[0] != id+":exp" {
		t.Fatalf("fields of %s after node's delete: %v, want only %s:exp", id, msgFields, id)
	}
	if _, n, err := e.q.SweepExpiryOrphans(e.ctx, "ttlq", 0, 100); err != nil || n != 1 {
		t.Fatalf("SweepExpiryOrphans = %d, %v", n, err)
	}
}
