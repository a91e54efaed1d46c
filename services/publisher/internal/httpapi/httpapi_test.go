package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/bearer"
	"github.com/wsmq/wsmq/services/publisher/internal/access"
)

// failing answers every Send with its error.
type failing struct {
	publisherv1.UnimplementedPublisherServiceServer
	err error
}

func (f failing) Send(context.Context, *publisherv1.SendRequest) (*publisherv1.SendResponse, error) {
	return nil, f.err
}

func TestEveryGRPCCodeGetsItsHTTPStatusAndStatusJSONBody(t *testing.T) {
	want := map[codes.Code]int{
		codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400, codes.DeadlineExceeded: 504,
		codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403, codes.ResourceExhausted: 429,
		codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400, codes.Unimplemented: 501,
		codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500, codes.Unauthenticated: 401,
	}
	if len(want) != 16 {
		t.Fatalf("table covers %d codes, want every non-OK code (16)", len(want))
	}
	acc := &access.Access{Send: bearer.New(nil, true)}
	for code, httpStatus := range want {
		t.Run(code.String(), func(t *testing.T) {
			h := New(Options{Send: failing{err: status.Error(code, "queue: text of "+code.String())}, Access: acc})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/queues/q/messages", strings.NewReader(`{"message":"m"}`)))
			if rec.Code != httpStatus {
				t.Errorf("HTTP status %d, want %d", rec.Code, httpStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var st map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if st["code"] != float64(code) || st["message"] != "queue: text of "+code.String() || len(st) != 2 {
				t.Errorf("body %v, want google.rpc.Status {code:%d, message}", st, code)
			}
		})
	}
}

func TestUnknownRouteIsNotFoundStatusJSON(t *testing.T) {
	h := New(Options{Send: failing{}, Access: &access.Access{Send: bearer.New(nil, true)}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/nope", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"code":5`) {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestWrongFieldTypeAndTrailingDataAreInvalidArgumentNamingTheField(t *testing.T) {
	h := New(Options{Send: failing{}, Access: &access.Access{Send: bearer.New(nil, true)}})
	for body, msg := range map[string]string{
		`{"message":"m","delaySeconds":"5"}`: "delaySeconds: must be a JSON integer",
		`{"message":"m"} {}`:                 "body: must be a single JSON object",
		`{"message":`:                        "body: invalid JSON",
		``:                                   "body: must be a JSON object",
		`{"message":"m","extra":1}`:          "extra: unknown field",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/queues/q/messages", strings.NewReader(body)))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), msg) {
			t.Errorf("body %q: got %d %s, want 400 with %q", body, rec.Code, rec.Body, msg)
		}
	}
}
