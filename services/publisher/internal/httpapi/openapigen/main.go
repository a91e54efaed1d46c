// Command openapigen turns the OpenAPI (Swagger 2.0) document
// protoc-gen-openapiv2 makes from the protos and proto/.../http.yaml into
// the document of the publisher's hand-written HTTP API, which differs from
// the proto3 JSON mapping in three ways the generator cannot be told:
// int64 values are JSON numbers (not strings), a MessageState is its
// lower-case short name ("acknowledged"), and WatchDeliveries is a
// text/event-stream of DeliveryEvent (resumed with Last-Event-ID). It also
// names the API and its bearer-key security. `make proto` runs it:
//
//	go run ./services/publisher/internal/httpapi/openapigen -in raw.json -out openapi.json
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	in := flag.String("in", "", "protoc-gen-openapiv2 output")
	out := flag.String("out", "", "document to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := fix(doc); err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func fix(doc map[string]any) error {
	doc["info"] = map[string]any{
		"title":   "wsmq publisher HTTP/JSON API",
		"version": "v1",
		"description": "The publisher's HTTP API (WSMQ_PUBLISHER_HTTP_LISTEN), generated from proto/wsmq/publisher/v1 " +
			"and its http.yaml. Errors are google.rpc.Status JSON ({\"code\",\"message\"}) with the HTTP status of the gRPC code. " +
			"Unknown JSON fields are refused.",
	}
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization",
			"description": "`Bearer <key>`: a send key (WSMQ_PUBLISHER_KEYS) for /v1/queues, /v1/messages:batch and /v1/deliveries; an admin key (WSMQ_PUBLISHER_ADMIN_KEYS) for /v1/admin."},
	}
	doc["security"] = []any{map[string]any{"bearer": []any{}}}
	walk(doc)

	defs, _ := doc["definitions"].(map[string]any)
	st, ok := defs["v1MessageState"].(map[string]any)
	if !ok {
		return fmt.Errorf("no definition v1MessageState")
	}
	var names []any
	enum, _ := st["enum"].([]any)
	for _, v := range enum {
		s, _ := v.(string)
		if s == "MESSAGE_STATE_UNSPECIFIED" {
			continue
		}
		names = append(names, strings.ToLower(strings.TrimPrefix(s, "MESSAGE_STATE_")))
	}
	st["enum"] = names
	delete(st, "default")

	paths, _ := doc["paths"].(map[string]any)
	dp, _ := paths["/v1/deliveries"].(map[string]any)
	get, ok := dp["get"].(map[string]any)
	if !ok {
		return fmt.Errorf("no path GET /v1/deliveries")
	}
	get["produces"] = []any{"text/event-stream"}
	get["description"] = "Server-sent events: each event is `id: <position>`, `event: delivery`, `data: <DeliveryEvent JSON>`. " +
		"A reconnecting client sends its last id as Last-Event-ID (it wins over `after`). An error after the stream started is " +
		"an `event: error` whose data is a google.rpc.Status, then the stream ends. Comment lines keep an idle stream open."
	responses, _ := get["responses"].(map[string]any)
	responses["200"] = map[string]any{
		"description": "A text/event-stream; the data of every `delivery` event is a DeliveryEvent.",
		"schema":      map[string]any{"$ref": "#/definitions/v1DeliveryEvent"},
	}
	params, _ := get["parameters"].([]any)
	get["parameters"] = append(params, map[string]any{"name": "Last-Event-ID", "in": "header", "required": false, "type": "string",
		"description": "the position of the last event handled; overrides `after`"})
	return nil
}

// walk makes every int64 value an integer: the API writes and reads JSON
// numbers (proto3's JSON mapping would use strings).
func walk(v any) {
	switch x := v.(type) {
	case map[string]any:
		if x["type"] == "string" && (x["format"] == "int64" || x["format"] == "uint64") {
			x["type"] = "integer"
		}
		for _, c := range x {
			walk(c)
		}
	case []any:
		for _, c := range x {
			walk(c)
		}
	}
}
