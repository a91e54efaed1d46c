package server

import (
	_ "embed"
	"net/http"
)

//go:embed demo.html
var demoHTML []byte

// sdkJS is the JavaScript SDK the demo page runs on: a copy of
// clients/js/index.js (a module cannot embed files outside its directory).
// go generate refreshes it; a test of clients/js (services/gateway/internal/
// jssdk) fails when it differs from the canonical file.
//
//go:generate cp ../../../../clients/js/index.js wsmq.js
//go:embed wsmq.js
var sdkJS []byte

func serveDemo(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
	_, _ = w.Write(demoHTML)
}

func serveSDK(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(sdkJS)
}
