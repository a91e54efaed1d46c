package batchfile

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestParseLineAcceptsJSONAndTabSeparatedLines(t *testing.T) {
	cases := []struct {
		name, line string
		want       Item
		skip       bool
		errHas     string
	}{
		{name: "json", line: `{"queue":"q1","message":"hi","delay_seconds":3}`, want: Item{Queue: "q1", Message: "hi", DelaySeconds: 3}},
		{name: "json without delay", line: `  {"queue":"q1","message":""}  `, want: Item{Queue: "q1"}},
		{name: "tsv keeps later tabs and spaces in the message", line: "q2\t a\tb ", want: Item{Queue: "q2", Message: " a\tb "}},
		{name: "crlf", line: "q2\tx\r", want: Item{Queue: "q2", Message: "x"}},
		{name: "blank", line: "   ", skip: true},
		{name: "comment", line: "# a note", skip: true},
		{name: "no tab", line: "q1 hello", errHas: "QUEUE<TAB>MESSAGE"},
		{name: "empty queue", line: "\thello", errHas: "empty queue"},
		{name: "broken json", line: `{"queue":"q1",`, errHas: "invalid JSON"},
		{name: "unknown field", line: `{"queue":"q1","message":"m","delay":3}`, errHas: "unknown field"},
		{name: "missing queue", line: `{"message":"m"}`, errHas: `"queue" is missing`},
		{name: "missing message", line: `{"queue":"q"}`, errHas: `"message" is missing`},
		{name: "message not a string", line: `{"queue":"q","message":{"a":1}}`, errHas: "invalid JSON"},
		{name: "two objects", line: `{"queue":"q","message":"m"} {"queue":"q","message":"m"}`, errHas: "text after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			it, skip, err := ParseLine(c.line)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("ParseLine(%q) err = %v, want one containing %q", c.line, err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", c.line, err)
			}
			if skip != c.skip || it != c.want {
				t.Fatalf("ParseLine(%q) = %+v skip=%v, want %+v skip=%v", c.line, it, skip, c.want, c.skip)
			}
		})
	}
}

func TestReaderNumbersLinesAndContinuesAfterABadLine(t *testing.T) {
	in := "# header\nq1\tone\nbad line\n\n{\"queue\":\"q2\",\"message\":\"two\"}\n"
	r := NewReader(strings.NewReader(in))
	var got []string
	for {
		it, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *LineError
		if errors.As(err, &le) {
			got = append(got, "error@"+itoa(le.Line))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Queue+"@"+itoa(it.Line))
	}
	want := "q1@2 error@3 q2@5"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestReaderRejectsALineOverTheLimit(t *testing.T) {
	r := NewReader(strings.NewReader("q\t" + strings.Repeat("x", MaxLineBytes+1) + "\n"))
	_, err := r.Next()
	var le *LineError
	if err == nil || errors.Is(err, io.EOF) || errors.As(err, &le) {
		t.Fatalf("Next on an over-long line: %v, want a fatal read error", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{`{"queue":"q","message":"m","delay_seconds":1}`, "q\tm", "", "#", "{", "\t", "q\t\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		it, skip, err := ParseLine(line)
		if err != nil || skip {
			if it != (Item{}) {
				t.Fatalf("ParseLine(%q) returned an item with err=%v skip=%v", line, err, skip)
			}
			return
		}
		if it.Queue == "" {
			t.Fatalf("ParseLine(%q) accepted an empty queue", line)
		}
	})
}
