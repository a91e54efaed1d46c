package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// tailLines is how many of a process's last log lines a start error quotes.
const tailLines = 20

// maxLine bounds one buffered log line; longer lines are flushed in pieces.
const maxLine = 64 << 10

// logSink serialises the lines of every process onto one writer, so lines of
// different processes never interleave mid-line.
type logSink struct {
	mu    sync.Mutex
	w     io.Writer
	width int // name column width
}

func (s *logSink) write(name, line string) {
	if s.w == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = fmt.Fprintf(s.w, "%-*s | %s\n", s.width, name, line)
}

// lineWriter is the stdout/stderr of one process: it splits the output into
// lines, makes JSON log lines readable, keeps the last lines for error
// messages and passes each line to onLine (if set) before logging it.
type lineWriter struct {
	name   string
	sink   *logSink
	onLine func(string) bool // returns false to keep the line out of the log

	mu   sync.Mutex
	buf  []byte
	tail []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLine {
				w.line(string(w.buf))
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.line(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = w.buf[i+1:]
	}
}

// flush logs a last line without its newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) line(l string) {
	if w.onLine != nil && !w.onLine(l) {
		return
	}
	l = readable(l)
	w.tail = append(w.tail, l)
	if len(w.tail) > tailLines {
		w.tail = w.tail[len(w.tail)-tailLines:]
	}
	w.sink.write(w.name, l)
}

// lastLines returns the process's last log lines, oldest first.
func (w *lineWriter) lastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}

// readable turns a log/slog JSON line ({"time":..,"level":..,"msg":..,...})
// into "15:04:05.000 INFO  msg key=value ..."; other lines pass unchanged.
func readable(line string) string {
	if !strings.HasPrefix(line, "{") {
		return line
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return line
	}
	msg, ok := m["msg"].(string)
	if !ok {
		return line
	}
	var b strings.Builder
	if ts, ok := m["time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			b.WriteString(t.Local().Format("15:04:05.000 "))
		}
	}
	if lvl, ok := m["level"].(string); ok {
		fmt.Fprintf(&b, "%-5s ", lvl)
	}
	b.WriteString(msg)
	delete(m, "time")
	delete(m, "level")
	delete(m, "msg")
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		var s string
		switch v := v.(type) {
		case string:
			s = v
			if s == "" || strings.ContainsAny(s, " \t\"=") {
				s = fmt.Sprintf("%q", s)
			}
		default:
			j, _ := json.Marshal(v)
			s = string(j)
		}
		fmt.Fprintf(&b, " %s=%s", k, s)
	}
	return b.String()
}
