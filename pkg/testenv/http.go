package testenv

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// httpTimeout bounds one HTTP request of HTTPGet.
const httpTimeout = 10 * time.Second

var httpClient = &http.Client{Timeout: httpTimeout}

// HTTPGet fetches url and returns its status code and body, for polling a
// server's /readyz or /metrics (an error: not answering yet).
func HTTPGet(url string) (int, string, error) {
	res, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, "", fmt.Errorf("read %s: %w", url, err)
	}
	return res.StatusCode, string(b), nil
}

// MustGet is HTTPGet that fails the test when url does not answer.
func MustGet(t testing.TB, url string) (int, string) {
	t.Helper()
	code, body, err := HTTPGet(url)
	if err != nil {
		t.Fatalf("testenv: GET %s: %v", url, err)
	}
	return code, body
}
