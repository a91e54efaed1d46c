// Package serve is the life of a wsmq service: its servers (gRPC, public
// HTTP, the admin HTTP listener with health, readiness, metrics and pprof),
// the probes that decide readiness, and the ordered stop on shutdown. Every
// service wires the same pieces the same way in its main.go.
package serve
