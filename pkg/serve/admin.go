package serve

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
)

// Readiness is one named condition of /readyz.
type Readiness struct {
	Name string
	Up   func() bool
	// Advisory conditions are reported ("up"/"down") but never make the
	// answer 503: states that readiness should show without taking the
	// instance out of rotation (e.g. Redis memory above a high-water mark).
	Advisory bool
}

// Status is the JSON body of /healthz and /readyz, the same on every
// service: {"status":"ok"} or {"status":"unavailable","checks":{"redis":"down"}}.
// It never carries error text (the gateway serves /healthz publicly).
type Status struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// Status values.
const (
	StatusOK          = "ok"
	StatusUnavailable = "unavailable"
	checkUp           = "up"
	checkDown         = "down"
)

// HealthHandler answers 200 {"status":"ok"} while the process serves.
func HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, Status{Status: StatusOK})
	})
}

// ReadyHandler answers 200 when every condition is up, else 503, with each
// condition's state.
func ReadyHandler(conds ...Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := Status{Status: StatusOK, Checks: map[string]string{}}
		code := http.StatusOK
		for _, c := range conds {
			if c.Up() {
				st.Checks[c.Name] = checkUp
				continue
			}
			st.Checks[c.Name] = checkDown
			if !c.Advisory {
				st.Status, code = StatusUnavailable, http.StatusServiceUnavailable
			}
		}
		writeStatus(w, code, st)
	})
}

func writeStatus(w http.ResponseWriter, code int, st Status) { WriteJSON(w, code, st) }

// WriteJSON answers v as uncached JSON with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// AdminOptions is what the admin listener serves.
type AdminOptions struct {
	Metrics   http.Handler // GET /metrics; nil: none
	Readiness []Readiness  // GET /readyz
	Pprof     bool         // /debug/pprof/ (keep the listener on loopback)
}

// AdminHandler serves /healthz, /readyz, /metrics and, when enabled, pprof.
// It belongs on a private listener, never the public one.
func AdminHandler(o AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", HealthHandler())
	mux.Handle("GET /readyz", ReadyHandler(o.Readiness...))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
