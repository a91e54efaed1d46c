package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// adminKey is the admin key the HTTP tests configure.
const adminKey = "admin-key-0123456789abcdef"

// idShape is an RSMQ message id.
var idShape = regexp.MustCompile(`^[0-9a-z]{10}[A-Za-z0-9]{22}$`)

// startHTTP starts a publisher with the HTTP API and the admin service on.
func startHTTP(t *testing.T, vars map[string]string) (*env, string) {
	t.Helper()
	all := map[string]string{"WSMQ_PUBLISHER_HTTP_LISTEN": "127.0.0.1:0", "WSMQ_PUBLISHER_ADMIN_KEYS": adminKey}
	for k, v := range vars {
		all[k] = v
	}
	e := start(t, all)
	if e.pub.Addrs.HTTP == nil {
		t.Fatal("HTTP listener not open")
	}
	return e, "http://" + e.pub.Addrs.HTTP.String()
}

// httpReply is a decoded answer.
type httpReply struct {
	status int
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url, key, body string) httpReply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	r := httpReply{status: resp.StatusCode, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: %d non-JSON body %q", method, url, resp.StatusCode, raw)
	}
	return r
}

// wantStatus fails unless r is the google.rpc.Status error with code and
// HTTP status, whose message contains msg.
func wantStatus(t *testing.T, r httpReply, httpStatus int, code codes.Code, msg string) {
	t.Helper()
	if r.status != httpStatus || r.body["code"] != float64(code) || !strings.Contains(r.body["message"].(string), msg) {
		t.Errorf("got %d %s, want %d {code:%d, message containing %q}", r.status, r.raw, httpStatus, code, msg)
	}
}

func TestHTTPSendStoresMessageWithIDAndDelay(t *testing.T) {
	e, base := startHTTP(t, nil)
	r := call(t, "POST", base+"/v1/queues/orders/messages", testKey, `{"message":"hello","delaySeconds":5}`)
	id, _ := r.body["id"].(string)
	if r.status != 200 || !idShape.MatchString(id) {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	ctx := authed(t, "")
	if body := e.rdb.HGet(ctx, "rsmq:orders:Q", id).Val(); body != "hello" {
		t.Fatalf("stored body %q", body)
	}
	score := e.rdb.ZScore(ctx, "rsmq:orders", id).Val()
	if now := float64(time.Now().UnixMilli()); score < now+3000 {
		t.Fatalf("visible at %v, want about 5s after now %v", score, now)
	}
}

func TestHTTPErrorsGetTheirHTTPStatusAndStatusJSON(t *testing.T) {
	e, base := startHTTP(t, nil)
	send := base + "/v1/queues/q/messages"
	wantStatus(t, call(t, "POST", base+"/v1/queues/bad.name/messages", testKey, `{"message":"m"}`), 400, codes.InvalidArgument, "queue: must match")
	wantStatus(t, call(t, "POST", send, testKey, `{"message":"m","delaySeconds":-1}`), 400, codes.InvalidArgument, "delay_seconds: must be between 0 and 9999999 (got -1)")
	wantStatus(t, call(t, "POST", send, "", `{"message":"m"}`), 401, codes.Unauthenticated, "authorization: missing")
	wantStatus(t, call(t, "POST", send, "wrong-key-0123456789abc", `{"message":"m"}`), 401, codes.Unauthenticated, "unknown key")
	wantStatus(t, call(t, "POST", send, adminKey, `{"message":"m"}`), 403, codes.PermissionDenied, "an admin key cannot send")
	wantStatus(t, call(t, "GET", base+"/v1/admin/queues/q", testKey, ""), 403, codes.PermissionDenied, "a send key cannot administer")
	wantStatus(t, call(t, "GET", base+"/v1/admin/queues/missing", adminKey, ""), 404, codes.NotFound, "queue: not found")
	wantStatus(t, call(t, "GET", base+"/v1/nothing", testKey, ""), 404, codes.NotFound, "no route")
	if r := call(t, "POST", base+"/v1/admin/queues", adminKey, `{"queue":"made"}`); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	wantStatus(t, call(t, "POST", base+"/v1/admin/queues", adminKey, `{"queue":"made"}`), 409, codes.AlreadyExists, "queue: already exists")
	wantStatus(t, call(t, "POST", send, testKey, `{"message":"`+strings.Repeat("x", 70000)+`"}`), 400, codes.InvalidArgument, "message: too long (70000 > maxsize 65536)")

	e.redis.Stop()
	wantStatus(t, call(t, "POST", send, testKey, `{"message":"m"}`), 503, codes.Unavailable, "redis")
}

func TestHTTPAdminRoutesAreNotImplementedWithoutAdminKeys(t *testing.T) {
	_, base := startHTTP(t, map[string]string{"WSMQ_PUBLISHER_ADMIN_KEYS": ""})
	wantStatus(t, call(t, "GET", base+"/v1/admin/queues", testKey, ""), 501, codes.Unimplemented, "admin: disabled")
}

func TestHTTPUnknownFieldIsRefusedNamingItAndNothingIsStored(t *testing.T) {
	e, base := startHTTP(t, nil)
	wantStatus(t, call(t, "POST", base+"/v1/queues/q/messages", testKey, `{"message":"m","delaySecond":5}`), 400, codes.InvalidArgument, "delaySecond: unknown field")
	wantStatus(t, call(t, "POST", base+"/v1/messages:batch", testKey, `{"items":[{"queue":"q","mesage":"m"}]}`), 400, codes.InvalidArgument, "mesage: unknown field")
	if n := e.rdb.Exists(authed(t, ""), "rsmq:q").Val(); n != 0 {
		t.Fatalf("a refused request stored something")
	}
}

func TestHTTPBodyAboveTheLimitIs413(t *testing.T) {
	_, base := startHTTP(t, map[string]string{"WSMQ_PUBLISHER_HTTP_MAX_BODY_BYTES": "2048"})
	ok := call(t, "POST", base+"/v1/queues/q/messages", testKey, `{"message":"`+strings.Repeat("x", 1900)+`"}`)
	if ok.status != 200 {
		t.Fatalf("body under the limit: %d %s", ok.status, ok.raw)
	}
	wantStatus(t, call(t, "POST", base+"/v1/queues/q/messages", testKey, `{"message":"`+strings.Repeat("x", 3000)+`"}`), 413, codes.ResourceExhausted, "body: larger than 2048 bytes")
}

func TestHTTPBatchGivesPerItemResultsInOrder(t *testing.T) {
	_, base := startHTTP(t, nil)
	r := call(t, "POST", base+"/v1/messages:batch", testKey,
		`{"items":[{"queue":"a","message":"1"},{"queue":"bad!","message":"2"},{"queue":"b","message":"3","delaySeconds":10000000}]}`)
	res, _ := r.body["results"].([]any)
	if r.status != 200 || len(res) != 3 {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	first := res[0].(map[string]any)
	if !idShape.MatchString(first["id"].(string)) || first["code"] != 0.0 {
		t.Errorf("item 0: %v", first)
	}
	if second := res[1].(map[string]any); second["code"] != 3.0 || !strings.HasPrefix(second["error"].(string), "items[1].queue: must match") {
		t.Errorf("item 1: %v", second)
	}
	if third := res[2].(map[string]any); third["code"] != 3.0 || !strings.HasPrefix(third["error"].(string), "items[2].delay_seconds: must be between") {
		t.Errorf("item 2: %v", third)
	}
	over := `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"queue":"a","message":"x"},`, 1001), ",") + `]}`
	wantStatus(t, call(t, "POST", base+"/v1/messages:batch", testKey, over), 400, codes.InvalidArgument, "items: at most 1000 items per batch (got 1001)")
}

func TestHTTPAndGRPCGiveTheSameIDShapeAndValidationMessages(t *testing.T) {
	e, base := startHTTP(t, nil)
	ctx := authed(t, testKey)
	for _, in := range []struct {
		queue, message string
		delay          int64
	}{
		{"ok", "m", 0}, {"", "m", 0}, {"bad name", "m", 0}, {"ok", "m", -5}, {"ok", "m", 10_000_000},
		{"ok", strings.Repeat("é", 65537), 0},
	} {
		body, _ := json.Marshal(map[string]any{"message": in.message, "delaySeconds": in.delay})
		path := base + "/v1/queues/" + in.queue + "/messages"
		if in.queue == "" {
			// An empty path segment does not route; the batch route carries it.
			b, _ := json.Marshal(map[string]any{"items": []map[string]any{{"queue": "", "message": in.message}}})
			hr := call(t, "POST", base+"/v1/messages:batch", testKey, string(b))
			gr, err := e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{{Message: in.message}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := hr.body["results"].([]any)[0].(map[string]any)["error"]; got != gr.GetResults()[0].GetError() {
				t.Errorf("empty queue: HTTP %q, gRPC %q", got, gr.GetResults()[0].GetError())
			}
			continue
		}
		hr := call(t, "POST", path, testKey, string(bytes.TrimSpace(body)))
		gr, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: in.queue, Message: in.message, DelaySeconds: in.delay})
		if err != nil {
			st := status.Convert(err)
			if hr.body["code"] != float64(st.Code()) || hr.body["message"] != st.Message() {
				t.Errorf("%+v: HTTP %s, gRPC %v", in.queue, hr.raw, err)
			}
			continue
		}
		hid, _ := hr.body["id"].(string)
		if !idShape.MatchString(hid) || !idShape.MatchString(gr.GetId()) {
			t.Errorf("ids: HTTP %q, gRPC %q", hid, gr.GetId())
		}
	}
}

func TestHTTPAPIServesTLSAndMutualTLSLikeTheGRPCListener(t *testing.T) {
	pki := newPKI(t)
	r := testenv.StartRedis(t)
	p := startInProcess(t, r.URL(), map[string]string{"WSMQ_PUBLISHER_HTTP_LISTEN": "127.0.0.1:0",
		"WSMQ_TLS_CERT": pki.serverCert, "WSMQ_TLS_KEY": pki.serverKey, "WSMQ_TLS_CLIENT_CA": pki.caFile}, nil)
	url := "https://" + p.Addrs.HTTP.String() + "/v1/queues/q/messages"
	post := func(tc *tls.Config) (*http.Response, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"message":"m"}`))
		req.Header.Set("Authorization", "Bearer "+testKey)
		return c.Do(req)
	}
	if _, err := post(&tls.Config{RootCAs: pki.roots, ServerName: "localhost"}); err == nil {
		t.Fatal("HTTPS without a client certificate succeeded")
	}
	resp, err := post(&tls.Config{RootCAs: pki.roots, ServerName: "localhost", Certificates: []tls.Certificate{pki.client}})
	if err != nil {
		t.Fatalf("HTTPS with a client certificate: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS send: %d", resp.StatusCode)
	}
	plain, err := http.Post("http://"+p.Addrs.HTTP.String()+"/v1/queues/q/messages", "application/json", strings.NewReader(`{"message":"m"}`))
	if err == nil {
		_ = plain.Body.Close()
		if plain.StatusCode < 400 {
			t.Fatalf("plain HTTP to the TLS listener: %d", plain.StatusCode)
		}
	}
}

func TestHTTPSendTakesATTLAndGetStatusAnswersOverHTTP(t *testing.T) {
	e, base := startHTTP(t, nil)
	r := call(t, "POST", base+"/v1/queues/orders/messages", testKey, `{"message":"soon stale","ttlSeconds":600}`)
	id, _ := r.body["id"].(string)
	if r.status != 200 || !idShape.MatchString(id) {
		t.Fatalf("send: %d %s", r.status, r.raw)
	}
	exp, err := e.rdb.HGet(authed(t, ""), "rsmq:orders:Q", id+":exp").Int64()
	if now := time.Now().UnixMilli(); err != nil || exp < now+590_000 || exp > now+610_000 {
		t.Fatalf("expiry field %d (%v), want about now+600s", exp, err)
	}
	wantStatus(t, call(t, "POST", base+"/v1/queues/orders/messages", testKey, `{"message":"m","ttlSeconds":-1}`), 400, codes.InvalidArgument, "ttl_seconds")
	st := call(t, "GET", base+"/v1/queues/orders/messages/"+id, testKey, "")
	if st.status != 200 || st.body["state"] != "queued" {
		t.Fatalf("status: %d %s, want queued", st.status, st.raw)
	}
	if st := call(t, "GET", base+"/v1/queues/orders/messages/"+strings.Repeat("x", 32), testKey, ""); st.status != 200 || st.body["state"] != "unknown" {
		t.Fatalf("status of an unknown id: %d %s", st.status, st.raw)
	}
	wantStatus(t, call(t, "GET", base+"/v1/queues/orders/messages/"+id, "", ""), 401, codes.Unauthenticated, "authorization")
}
