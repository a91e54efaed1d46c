// Package batchfile reads the input of `wsmqctl send --file`: one message
// per line, either a JSON object {"queue","message","delay_seconds"} or
// "QUEUE<TAB>MESSAGE". Blank lines and lines starting with '#' are skipped.
package batchfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxLineBytes is the longest line Reader accepts: room for a 65,536
// UTF-16 unit message fully JSON-escaped.
const MaxLineBytes = 1 << 20

// Item is one message to send.
type Item struct {
	Line         int // 1-based line number in the input
	Queue        string
	Message      string
	DelaySeconds int64
}

// LineError is a malformed line; reading may go on after it.
type LineError struct {
	Line int
	Err  error
}

// Error implements error.
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

// Reader reads Items line by line.
type Reader struct {
	sc   *bufio.Scanner
	line int
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineBytes)
	return &Reader{sc: sc}
}

// Next returns the next item. A malformed line gives a *LineError and the
// following call reads on; the end of input gives io.EOF; any other error
// (a read error, a line over MaxLineBytes) ends the input.
func (r *Reader) Next() (Item, error) {
	for r.sc.Scan() {
		r.line++
		it, skip, err := ParseLine(r.sc.Text())
		if err != nil {
			return Item{}, &LineError{Line: r.line, Err: err}
		}
		if skip {
			continue
		}
		it.Line = r.line
		return it, nil
	}
	if err := r.sc.Err(); err != nil {
		return Item{}, fmt.Errorf("after line %d: %w", r.line, err)
	}
	return Item{}, io.EOF
}

// jsonItem is the JSON line form; pointers tell missing from empty.
type jsonItem struct {
	Queue        *string `json:"queue"`
	Message      *string `json:"message"`
	DelaySeconds int64   `json:"delay_seconds"`
}

// ParseLine parses one line (without its newline). skip reports a blank or
// comment line. The queue name is only checked to be present: the
// publisher validates it and answers per item.
func ParseLine(line string) (it Item, skip bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return Item{}, true, nil
	}
	if strings.HasPrefix(trimmed, "{") {
		dec := json.NewDecoder(strings.NewReader(trimmed))
		dec.DisallowUnknownFields()
		var j jsonItem
		if err := dec.Decode(&j); err != nil {
			return Item{}, false, fmt.Errorf("invalid JSON (want {\"queue\",\"message\",\"delay_seconds\"}): %w", err)
		}
		if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 || dec.More() {
			return Item{}, false, errors.New("invalid JSON: text after the object")
		}
		switch {
		case j.Queue == nil || *j.Queue == "":
			return Item{}, false, errors.New(`"queue" is missing`)
		case j.Message == nil:
			return Item{}, false, errors.New(`"message" is missing`)
		}
		return Item{Queue: *j.Queue, Message: *j.Message, DelaySeconds: j.DelaySeconds}, false, nil
	}
	queue, msg, ok := strings.Cut(line, "\t")
	if !ok {
		return Item{}, false, errors.New(`want a JSON object or "QUEUE<TAB>MESSAGE"`)
	}
	queue = strings.TrimSpace(queue)
	if queue == "" {
		return Item{}, false, errors.New("empty queue name before the tab")
	}
	return Item{Queue: queue, Message: msg}, false, nil
}
