package supervisor

import (
	"strings"
	"testing"
	"time"
)

func TestReadableTurnsSlogJSONIntoOneTextLine(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	clock := ts.Local().Format("15:04:05.000")
	tests := []struct{ in, want string }{
		{`{"time":"` + ts.Format(time.RFC3339Nano) + `","level":"INFO","msg":"listening","addr":"127.0.0.1:3000","n":3}`,
			clock + " INFO  listening addr=127.0.0.1:3000 n=3"},
		{`{"level":"WARN","msg":"dev mode","why":"a b"}`, `WARN  dev mode why="a b"`},
		{"1234:M 02 Jan 2026 * Ready to accept connections tcp", "1234:M 02 Jan 2026 * Ready to accept connections tcp"},
		{`{"not":"slog"}`, `{"not":"slog"}`},
		{`{broken`, `{broken`},
	}
	for _, tt := range tests {
		if got := readable(tt.in); got != tt.want {
			t.Errorf("readable(%s)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestLineWriterPrefixesWholeLinesAndKeepsTheTail(t *testing.T) {
	var out strings.Builder
	w := &lineWriter{name: "redis", sink: &logSink{w: &out, width: 9}}
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\r\n"))
	for range tailLines + 5 {
		_, _ = w.Write([]byte("x\n"))
	}
	_, _ = w.Write([]byte("last"))
	w.flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if lines[0] != "redis     | one" || lines[1] != "redis     | two" || lines[len(lines)-1] != "redis     | last" {
		t.Fatalf("log lines: %q", lines)
	}
	tail := strings.Split(w.lastLines(), "\n")
	if len(tail) != tailLines || tail[len(tail)-1] != "last" {
		t.Fatalf("tail has %d lines ending %q", len(tail), tail[len(tail)-1])
	}
}
