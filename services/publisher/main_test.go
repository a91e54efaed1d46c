package main

import (
	"context"
	"strings"
	"testing"
)

func TestRunStopsAtStartWithAClearConfigError(t *testing.T) {
	env := map[string]string{"WSMQ_PUBLISHER_MAX_BATCH": "lots"}
	err := run(context.Background(), nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		[]string{"WSMQ_PUBLISHER_MAX_BATCH=lots"})
	if err == nil || !strings.Contains(err.Error(), "WSMQ_PUBLISHER_MAX_BATCH") || !strings.Contains(err.Error(), "WSMQ_PUBLISHER_KEYS is required") {
		t.Fatalf("run = %v, want errors naming WSMQ_PUBLISHER_MAX_BATCH and the missing keys", err)
	}
}
