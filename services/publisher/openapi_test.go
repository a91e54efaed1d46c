package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/internal/httpapi"
)

// oaDoc is the OpenAPI (Swagger 2.0) document, decoded loosely.
type oaDoc struct {
	Paths       map[string]map[string]oaOperation `json:"paths"`
	Definitions map[string]map[string]any         `json:"definitions"`
}

type oaOperation struct {
	Parameters []struct {
		Name   string         `json:"name"`
		In     string         `json:"in"`
		Schema map[string]any `json:"schema"`
	} `json:"parameters"`
	Responses map[string]struct {
		Schema map[string]any `json:"schema"`
	} `json:"responses"`
	Produces []string `json:"produces"`
}

// contract checks real requests and answers of the HTTP API against the
// document: the route exists with the method, every body field and query
// parameter is declared, every answer field is in the answer's schema
// with its type (enums included).
type contract struct {
	t    *testing.T
	doc  oaDoc
	seen map[string]bool // "METHOD template" exercised
}

// route finds the path template matching path and its operation.
func (c *contract) route(method, path string) (string, oaOperation) {
	c.t.Helper()
	for tmpl, ops := range c.doc.Paths {
		re := "^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		if regexp.MustCompile(re).MatchString(path) {
			if op, ok := ops[strings.ToLower(method)]; ok {
				c.seen[method+" "+tmpl] = true
				return tmpl, op
			}
		}
	}
	c.t.Fatalf("%s %s: no such operation in the OpenAPI document", method, path)
	return "", oaOperation{}
}

// resolve follows a $ref.
func (c *contract) resolve(s map[string]any) map[string]any {
	if ref, ok := s["$ref"].(string); ok {
		d, ok := c.doc.Definitions[strings.TrimPrefix(ref, "#/definitions/")]
		if !ok {
			c.t.Fatalf("dangling $ref %s", ref)
		}
		return d
	}
	return s
}

// check fails when v does not fit schema s; where names the place.
func (c *contract) check(where string, s map[string]any, v any) {
	c.t.Helper()
	s = c.resolve(s)
	switch s["type"] {
	case "object", nil:
		m, ok := v.(map[string]any)
		if !ok {
			c.t.Errorf("%s: %v is not an object", where, v)
			return
		}
		props, _ := s["properties"].(map[string]any)
		for k, fv := range m {
			ps, ok := props[k].(map[string]any)
			if !ok {
				c.t.Errorf("%s.%s: not in the schema (fields: %v)", where, k, keys(props))
				continue
			}
			c.check(where+"."+k, ps, fv)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			c.t.Errorf("%s: %v is not an array", where, v)
			return
		}
		items, _ := s["items"].(map[string]any)
		for i, x := range a {
			c.check(fmt.Sprintf("%s[%d]", where, i), items, x)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			c.t.Errorf("%s: %v is not an integer", where, v)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			c.t.Errorf("%s: %v is not a string", where, v)
			return
		}
		if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, any(str)) {
			c.t.Errorf("%s: %q is not one of %v", where, str, enum)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			c.t.Errorf("%s: %v is not a boolean", where, v)
		}
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// do sends a request and checks it and its answer against the document.
func (c *contract) do(base, key, method, target, body string) map[string]any {
	c.t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		c.t.Fatal(err)
	}
	_, op := c.route(method, u.Path)
	declared := map[string]bool{}
	var bodySchema map[string]any
	for _, p := range op.Parameters {
		declared[p.In+" "+p.Name] = true
		if p.In == "body" {
			bodySchema = p.Schema
		}
	}
	for k := range u.Query() {
		if !declared["query "+k] {
			c.t.Errorf("%s %s: query parameter %s not in the document", method, u.Path, k)
		}
	}
	if body != "" {
		if bodySchema == nil {
			c.t.Fatalf("%s %s: the document declares no body", method, u.Path)
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			c.t.Fatal(err)
		}
		c.check(method+" "+u.Path+" body", bodySchema, v)
	}
	r := call(c.t, method, base+target, key, body)
	resp, ok := op.Responses[fmt.Sprint(r.status)]
	if !ok {
		resp = op.Responses["default"]
	}
	if resp.Schema == nil {
		c.t.Fatalf("%s %s: no schema for answer %d", method, u.Path, r.status)
	}
	c.check(fmt.Sprintf("%s %s answer %d", method, u.Path, r.status), resp.Schema, r.body)
	return r.body
}

// TestHTTPAPIKeepsToItsOpenAPIDocument: the served document is the
// committed one (make proto-check keeps that fresh from the protos), and
// real requests and answers of every documented operation fit it.
func TestHTTPAPIKeepsToItsOpenAPIDocument(t *testing.T) {
	vars := map[string]string{}
	for k, v := range streamOn {
		vars[k] = v
	}
	e, base := startHTTP(t, vars)
	resp, err := http.Get(base + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(served, httpapi.OpenAPI) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes; want the embedded document", resp.StatusCode, resp.Header.Get("Content-Type"), len(served))
	}
	c := &contract{t: t, seen: map[string]bool{}}
	if err := json.Unmarshal(served, &c.doc); err != nil {
		t.Fatal(err)
	}

	sent := c.do(base, testKey, "POST", "/v1/queues/q1/messages", `{"message":"m","delaySeconds":0,"ttlSeconds":600}`)
	id, _ := sent["id"].(string)
	c.do(base, testKey, "POST", "/v1/messages:batch", `{"items":[{"queue":"q1","message":"a","delaySeconds":1,"ttlSeconds":0},{"queue":"bad:q","message":"b"}]}`)
	c.do(base, testKey, "GET", "/v1/queues/q1/messages/"+id, "")
	if _, err := e.q.ReceiveMessage(t.Context(), "q1", 30); err != nil { // a delivery event for the stream
		t.Fatal(err)
	}
	c.do(base, testKey, "GET", "/v1/queues/q1/messages/"+id, "")
	c.do(base, testKey, "POST", "/v1/queues/q1/messages", `{"message":"m","delaySeconds":-1}`) // an error answer
	c.do(base, "", "POST", "/v1/queues/q1/messages", `{"message":"m"}`)

	c.do(base, adminKey, "POST", "/v1/admin/queues", `{"queue":"q2","vtSeconds":30,"delaySeconds":0,"maxSize":2048}`)
	c.do(base, adminKey, "GET", "/v1/admin/queues?prefix=q&pageSize=10&pageToken=", "")
	c.do(base, adminKey, "GET", "/v1/admin/queues/q1", "")
	c.do(base, adminKey, "POST", "/v1/admin/queues/q1/redrive", `{"deadLetterQueue":"q2","maxMessages":5}`)
	c.do(base, adminKey, "POST", "/v1/admin/queues/q2/purge", "")
	c.do(base, adminKey, "DELETE", "/v1/admin/queues/q2", "")
	c.do(base, adminKey, "GET", "/v1/admin/queues/q2", "") // NOT_FOUND

	// The event stream: its media type and one event's data.
	_, op := c.route("GET", "/v1/deliveries")
	if !slices.Contains(op.Produces, "text/event-stream") {
		t.Errorf("GET /v1/deliveries produces %v", op.Produces)
	}
	for _, q := range []string{"queuePrefix", "after"} {
		if !slices.ContainsFunc(op.Parameters, func(p struct {
			Name   string         `json:"name"`
			In     string         `json:"in"`
			Schema map[string]any `json:"schema"`
		}) bool {
			return p.Name == q && p.In == "query"
		}) {
			t.Errorf("GET /v1/deliveries: query parameter %s not in the document", q)
		}
	}
	s, _ := openSSE(t, base, testKey, "queuePrefix=q&after=0", "")
	ev := s.next(1)[0]
	var data any
	if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
		t.Fatal(err)
	}
	c.check("GET /v1/deliveries event", op.Responses["200"].Schema, data)
	if m, _ := data.(map[string]any); m["id"] != id || m["state"] != string(rsmq.StatusInFlight) {
		t.Errorf("event %v, want in_flight of %s", data, id)
	}

	// Every documented operation was exercised.
	for tmpl, ops := range c.doc.Paths {
		for m := range ops {
			if !c.seen[strings.ToUpper(m)+" "+tmpl] {
				t.Errorf("%s %s is documented but not exercised", strings.ToUpper(m), tmpl)
			}
		}
	}
}
