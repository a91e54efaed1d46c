package main

import (
	"context"
	"strings"
	"testing"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
)

func TestRunStopsAtStartWithAClearConfigError(t *testing.T) {
	env := map[string]string{"WSMQ_PUBLISHER_MAX_BATCH": "lots"}
	err := run(context.Background(), nil, pkgconfig.MapEnv(env), hooks{})
	if err == nil || !strings.Contains(err.Error(), "WSMQ_PUBLISHER_MAX_BATCH") || !strings.Contains(err.Error(), "WSMQ_PUBLISHER_KEYS is required") {
		t.Fatalf("run = %v, want errors naming WSMQ_PUBLISHER_MAX_BATCH and the missing keys", err)
	}
}
