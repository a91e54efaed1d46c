// Package httpapi is the publisher's HTTP/JSON API: a hand-written net/http
// handler over the same internal/server code the gRPC listener serves, so
// validation, keys, the memory high-water mark and durable sends behave
// alike on both transports.
//
// Routes (JSON bodies, camelCase fields; int64 values are JSON numbers):
//
//	POST   /v1/queues/{queue}/messages        {"message","delaySeconds"} → {"id"}
//	POST   /v1/messages:batch                 {"items":[{"queue","message","delaySeconds"}]} → {"results":[{"id","code","error"}]}
//	GET    /v1/queues/{queue}/messages/{id}   → {"state","receiveCount","reason"}
//	GET    /v1/deliveries?queuePrefix=&after= → text/event-stream of delivery events (Last-Event-ID resumes)
//	GET    /v1/openapi.json                   → the OpenAPI document
//	POST   /v1/admin/queues                   {"queue","vtSeconds","delaySeconds","maxSize"} → {}
//	GET    /v1/admin/queues?prefix=&pageSize=&pageToken=   → {"queues":[...],"nextPageToken"}
//	GET    /v1/admin/queues/{queue}           → attributes
//	DELETE /v1/admin/queues/{queue}           → {}
//	POST   /v1/admin/queues/{queue}/purge     → {"removed"}
//	POST   /v1/admin/queues/{queue}/redrive   {"deadLetterQueue","maxMessages"} → {"moved","left"}
//
// Errors are google.rpc.Status JSON, {"code":3,"message":"queue: ..."},
// with the HTTP status of the gRPC code (HTTPStatus).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/services/publisher/internal/access"
)

// DefaultMaxBody is the default request body limit in bytes.
const DefaultMaxBody = 4 << 20

// Options configure the handler.
type Options struct {
	// Send serves the publish routes.
	Send publisherv1.PublisherServiceServer
	// Admin serves the admin routes; nil answers them UNIMPLEMENTED.
	Admin publisherv1.QueueAdminServiceServer
	// Access checks the Authorization header.
	Access *access.Access
	// MaxBody is the largest accepted body; default DefaultMaxBody.
	MaxBody int64
	// Watch serves GET /v1/deliveries (server.Server.Watch); nil answers
	// it UNIMPLEMENTED.
	Watch func(ctx context.Context, req *publisherv1.WatchDeliveriesRequest,
		send func(*publisherv1.DeliveryEvent) error, idle func() error) error
	// KeepAlive is the longest silence of an event stream before a comment
	// line is sent (proxies close idle connections); default 15s.
	KeepAlive time.Duration
}

// Status is the google.rpc.Status JSON of an error answer.
type Status struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type sendBody struct {
	Message      string `json:"message"`
	DelaySeconds int64  `json:"delaySeconds"`
	TTLSeconds   int64  `json:"ttlSeconds"`
}

type batchItem struct {
	Queue        string `json:"queue"`
	Message      string `json:"message"`
	DelaySeconds int64  `json:"delaySeconds"`
	TTLSeconds   int64  `json:"ttlSeconds"`
}

// statusBody is GetStatus's answer: state as its enum name without the
// MESSAGE_STATE_ prefix, lower case ("delivered").
type statusBody struct {
	State        string `json:"state"`
	ReceiveCount int64  `json:"receiveCount,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

type batchBody struct {
	Items []batchItem `json:"items"`
}

type batchResult struct {
	ID    string `json:"id,omitempty"`
	Code  int32  `json:"code"`
	Error string `json:"error,omitempty"`
}

type createBody struct {
	Queue        string `json:"queue"`
	VTSeconds    int64  `json:"vtSeconds"`
	DelaySeconds int64  `json:"delaySeconds"`
	MaxSize      int64  `json:"maxSize"`
}

type redriveBody struct {
	DeadLetterQueue string `json:"deadLetterQueue"`
	MaxMessages     int64  `json:"maxMessages"`
}

type attributes struct {
	Queue                   string `json:"queue"`
	VTSeconds               int64  `json:"vtSeconds"`
	DelaySeconds            int64  `json:"delaySeconds"`
	MaxSize                 int64  `json:"maxSize"`
	Messages                int64  `json:"messages"`
	InFlight                int64  `json:"inFlight"`
	OldestMessageAgeSeconds int64  `json:"oldestMessageAgeSeconds"`
	TotalReceived           int64  `json:"totalReceived"`
	TotalSent               int64  `json:"totalSent"`
	Created                 int64  `json:"created"`
	Modified                int64  `json:"modified"`
}

type handler struct {
	o Options
}

// New returns the API's handler.
func New(o Options) http.Handler {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/queues/{queue}/messages", h.send)
	mux.HandleFunc("POST /v1/messages:batch", h.batch)
	mux.HandleFunc("GET /v1/queues/{queue}/messages/{id}", h.status)
	mux.HandleFunc("GET /v1/deliveries", h.deliveries)
	mux.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	mux.HandleFunc("POST /v1/admin/queues", h.admin(h.create))
	mux.HandleFunc("GET /v1/admin/queues", h.admin(h.list))
	mux.HandleFunc("GET /v1/admin/queues/{queue}", h.admin(h.attrs))
	mux.HandleFunc("DELETE /v1/admin/queues/{queue}", h.admin(h.del))
	mux.HandleFunc("POST /v1/admin/queues/{queue}/purge", h.admin(h.purge))
	mux.HandleFunc("POST /v1/admin/queues/{queue}/redrive", h.admin(h.redrive))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, status.Error(codes.NotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)))
	})
	return mux
}

// HTTPStatus is the standard mapping of a gRPC code to an HTTP status (as
// grpc-gateway and Google APIs use it).
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError // Unknown, Internal, DataLoss
}

// errTooLarge is the body-limit refusal; HTTP 413 with RESOURCE_EXHAUSTED
// (what gRPC answers for a message above its limit).
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("body: larger than %d bytes", e.limit)
}

func writeError(w http.ResponseWriter, err error) {
	var tl errTooLarge
	if errors.As(err, &tl) {
		writeJSON(w, http.StatusRequestEntityTooLarge, Status{Code: int(codes.ResourceExhausted), Message: tl.Error()})
		return
	}
	st := status.Convert(err)
	writeJSON(w, HTTPStatus(st.Code()), Status{Code: int(st.Code()), Message: st.Message()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads r's JSON body into v: one object, no unknown field, at most
// MaxBody bytes. Its errors are InvalidArgument statuses naming the field.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return status.Errorf(codes.InvalidArgument, "content-type: must be application/json (got %q)", ct)
		}
	}
	body := http.MaxBytesReader(w, r.Body, h.o.MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err2 := dec.Token(); !errors.Is(err2, io.EOF) {
			var mbe *http.MaxBytesError
			if errors.As(err2, &mbe) {
				return errTooLarge{h.o.MaxBody}
			}
			return status.Error(codes.InvalidArgument, "body: must be a single JSON object")
		}
		return nil
	}
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errTooLarge{h.o.MaxBody}
	case errors.Is(err, io.EOF):
		return status.Error(codes.InvalidArgument, "body: must be a JSON object (got an empty body)")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return status.Errorf(codes.InvalidArgument, "body: invalid JSON: %v", err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return status.Errorf(codes.InvalidArgument, "%s: must be a JSON %s (got %s)", field, jsonKind(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if f, uerr := strconv.Unquote(field); uerr == nil {
			field = f
		}
		return status.Errorf(codes.InvalidArgument, "%s: unknown field", field)
	}
	return status.Errorf(codes.InvalidArgument, "body: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "int64", "int32", "int":
		return "integer"
	case "slice":
		return "array"
	case "struct":
		return "object"
	}
	return k
}

// authed returns r's context carrying its Authorization header for the
// access checks.
func authed(r *http.Request) context.Context {
	return access.WithAuthorization(r.Context(), r.Header.Values("Authorization"))
}

func (h *handler) send(w http.ResponseWriter, r *http.Request) {
	ctx := authed(r)
	if err := h.o.Access.CheckSend(ctx); err != nil {
		writeError(w, err)
		return
	}
	var b sendBody
	if err := h.decode(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	resp, err := h.o.Send.Send(ctx, &publisherv1.SendRequest{Queue: r.PathValue("queue"), Message: b.Message, DelaySeconds: b.DelaySeconds, TtlSeconds: b.TTLSeconds})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": resp.GetId()})
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	ctx := authed(r)
	if err := h.o.Access.CheckSend(ctx); err != nil {
		writeError(w, err)
		return
	}
	resp, err := h.o.Send.GetStatus(ctx, &publisherv1.GetStatusRequest{Queue: r.PathValue("queue"), Id: r.PathValue("id")})
	if err != nil {
		writeError(w, err)
		return
	}
	state := strings.ToLower(strings.TrimPrefix(resp.GetState().String(), "MESSAGE_STATE_"))
	writeJSON(w, http.StatusOK, statusBody{State: state, ReceiveCount: resp.GetReceiveCount(), Reason: resp.GetReason()})
}

func (h *handler) batch(w http.ResponseWriter, r *http.Request) {
	ctx := authed(r)
	if err := h.o.Access.CheckSend(ctx); err != nil {
		writeError(w, err)
		return
	}
	var b batchBody
	if err := h.decode(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	req := &publisherv1.SendBatchRequest{Items: make([]*publisherv1.SendRequest, len(b.Items))}
	for i, it := range b.Items {
		req.Items[i] = &publisherv1.SendRequest{Queue: it.Queue, Message: it.Message, DelaySeconds: it.DelaySeconds, TtlSeconds: it.TTLSeconds}
	}
	resp, err := h.o.Send.SendBatch(ctx, req)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]batchResult, len(resp.GetResults()))
	for i, res := range resp.GetResults() {
		out[i] = batchResult{ID: res.GetId(), Code: res.GetCode(), Error: res.GetError()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// admin wraps an admin route: the admin key, and UNIMPLEMENTED when the
// admin service is off.
func (h *handler) admin(f func(ctx context.Context, w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := authed(r)
		if err := h.o.Access.CheckAdmin(ctx); err != nil {
			writeError(w, err)
			return
		}
		if h.o.Admin == nil {
			writeError(w, status.Error(codes.Unimplemented, "admin: disabled (set WSMQ_PUBLISHER_ADMIN_KEYS)"))
			return
		}
		f(ctx, w, r)
	}
}

func (h *handler) create(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	var b createBody
	if err := h.decode(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	if _, err := h.o.Admin.CreateQueue(ctx, &publisherv1.CreateQueueRequest{Queue: b.Queue, VtSeconds: b.VTSeconds,
		DelaySeconds: b.DelaySeconds, MaxSize: b.MaxSize}); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (h *handler) list(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "prefix" && k != "pageSize" && k != "pageToken" {
			writeError(w, status.Errorf(codes.InvalidArgument, "%s: unknown query parameter", k))
			return
		}
	}
	var size int64
	if s := q.Get("pageSize"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			writeError(w, status.Errorf(codes.InvalidArgument, "pageSize: must be an integer (got %q)", s))
			return
		}
		size = n
	}
	resp, err := h.o.Admin.ListQueues(ctx, &publisherv1.ListQueuesRequest{Prefix: q.Get("prefix"), PageSize: int32(size), PageToken: q.Get("pageToken")})
	if err != nil {
		writeError(w, err)
		return
	}
	queues := resp.GetQueues()
	if queues == nil {
		queues = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": queues, "nextPageToken": resp.GetNextPageToken()})
}

func (h *handler) attrs(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	a, err := h.o.Admin.GetQueueAttributes(ctx, &publisherv1.GetQueueAttributesRequest{Queue: r.PathValue("queue")})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, attributes{Queue: a.GetQueue(), VTSeconds: a.GetVtSeconds(), DelaySeconds: a.GetDelaySeconds(),
		MaxSize: a.GetMaxSize(), Messages: a.GetMessages(), InFlight: a.GetInFlight(),
		OldestMessageAgeSeconds: a.GetOldestMessageAgeSeconds(), TotalReceived: a.GetTotalReceived(),
		TotalSent: a.GetTotalSent(), Created: a.GetCreated(), Modified: a.GetModified()})
}

func (h *handler) del(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if _, err := h.o.Admin.DeleteQueue(ctx, &publisherv1.DeleteQueueRequest{Queue: r.PathValue("queue")}); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (h *handler) purge(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	resp, err := h.o.Admin.PurgeQueue(ctx, &publisherv1.PurgeQueueRequest{Queue: r.PathValue("queue")})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"removed": resp.GetRemoved()})
}

func (h *handler) redrive(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	var b redriveBody
	if r.ContentLength != 0 {
		if err := h.decode(w, r, &b); err != nil {
			writeError(w, err)
			return
		}
	}
	resp, err := h.o.Admin.RedriveDeadLetters(ctx, &publisherv1.RedriveDeadLettersRequest{Queue: r.PathValue("queue"),
		DeadLetterQueue: b.DeadLetterQueue, MaxMessages: b.MaxMessages})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"moved": resp.GetMoved(), "left": resp.GetLeft()})
}
