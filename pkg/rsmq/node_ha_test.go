package rsmq_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// TestNodeRSMQInteroperatesWithTheSentinelManagedMaster is the Node
// cross-check pointed at a Sentinel-managed master: Go talks through the
// sentinels (a failover client), Node rsmq (which knows no Sentinel) talks
// to whichever node is master, before and after a failover. Manual, like
// the other Node cross-checks: set WSMQ_RSMQ_NODE_DIR.
func TestNodeRSMQInteroperatesWithTheSentinelManagedMaster(t *testing.T) {
	node := newNodeRSMQ(t, nil) // manual, as the other Node cross-checks
	ha := testenv.StartHA(t, testenv.HAOptions{Replicas: 2})
	rdb, err := redisconn.New(ha.URL(), redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	q := rsmq.New(rdb, rsmq.Options{Realtime: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := q.CreateQueue(ctx, "haq", rsmq.QueueConfig{VT: 30, MaxSize: rsmq.DefaultMaxSize}); err != nil {
		t.Fatal(err)
	}
	nodeAt := func(addr string) *nodeRSMQ {
		_, node.port, _ = strings.Cut(addr, ":")
		return node
	}
	// roundTrip: Go sends through the sentinels and Node receives it from
	// the master; Node sends and Go receives it.
	roundTrip := func(node *nodeRSMQ, body string) {
		t.Helper()
		id, err := q.SendMessage(ctx, "haq", "go "+body, rsmq.QueueDefault)
		if err != nil {
			t.Fatalf("go send: %v", err)
		}
		res, errName := node.call("receiveMessage", map[string]any{"qname": "haq", "vt": 0})
		var nm nodeMessage
		if errName != "" || json.Unmarshal(res, &nm) != nil || nm.ID != id || nm.Message != "go "+body {
			t.Fatalf("node received %s (%s), want %s", res, errName, id)
		}
		if res, errName = node.call("deleteMessage", map[string]any{"qname": "haq", "id": id}); errName != "" || string(res) != "1" {
			t.Fatalf("node delete: %s %s", res, errName)
		}
		res, errName = node.call("sendMessage", map[string]any{"qname": "haq", "message": "node " + body})
		var nodeID string
		if errName != "" || json.Unmarshal(res, &nodeID) != nil {
			t.Fatalf("node send: %s %s", res, errName)
		}
		m, err := q.ReceiveMessage(ctx, "haq", 0)
		if err != nil || m == nil || m.ID != nodeID || m.Message != "node "+body || m.RC != 1 {
			t.Fatalf("go received %+v (%v), want node's %s", m, err, nodeID)
		}
		if ok, err := q.DeleteMessage(ctx, "haq", m.ID); err != nil || !ok {
			t.Fatalf("go delete: %v %v", ok, err)
		}
	}
	old := ha.Master().Addr()
	roundTrip(nodeAt(old), "before")
	ha.KillMaster()
	now := ha.WaitFailover(ctx, old)
	roundTrip(nodeAt(now.Addr()), "after the failover")
}
