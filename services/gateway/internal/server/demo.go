package server

import (
	_ "embed"
	"net/http"
)

//go:embed demo.html
var demoHTML []byte

func serveDemo(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
	_, _ = w.Write(demoHTML)
}
