package rsmq

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits of RSMQ.md.
const (
	maxQueueNameLen = 160
	idLen           = 32
	idTimeLen       = 10
)

// Limits of queue attributes (RSMQ.md).
const (
	// MaxVTOrDelay is the largest visibility timeout or delay, seconds.
	MaxVTOrDelay = 9999999
	// MinMaxSize and MaxMaxSize bound a queue's maxsize (unless MaxSizeUnlimited).
	MinMaxSize = 1024
	MaxMaxSize = 65536
	// maxNamespaceLen bounds a key namespace (wsmq's rule; Node accepts any).
	maxNamespaceLen = 64
)

// ValidateQueueName reports whether name matches ^[a-zA-Z0-9_-]{1,160}$.
func ValidateQueueName(name string) error {
	if name == "" {
		return missing("qname")
	}
	if len(name) > maxQueueNameLen {
		return badFormat("qname")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' && c != '-' {
			return badFormat("qname")
		}
	}
	return nil
}

// ValidateNamespace reports whether ns can prefix wsmq's keys: 1 to 64
// printable ASCII characters without ':' (the key separator) or spaces.
func ValidateNamespace(ns string) error {
	if ns == "" || len(ns) > maxNamespaceLen {
		return fmt.Errorf("namespace must be 1 to %d characters", maxNamespaceLen)
	}
	for i := 0; i < len(ns); i++ {
		if c := ns[i]; c <= ' ' || c > '~' || c == ':' {
			return errors.New("namespace must be printable ASCII without ':' or spaces")
		}
	}
	return nil
}

// ValidateID reports whether id matches ^[a-zA-Z0-9:]{32}$.
func ValidateID(id string) error {
	if id == "" {
		return missing("id")
	}
	if len(id) != idLen {
		return badFormat("id")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != ':' {
			return badFormat("id")
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validateSeconds checks a vt or delay: 0..9,999,999, or QueueDefault when allowDefault.
func validateSeconds(field string, v int, allowDefault bool) error {
	if allowDefault && v == QueueDefault {
		return nil
	}
	if v < 0 || v > MaxVTOrDelay {
		return outOfRange(field, 0, MaxVTOrDelay)
	}
	return nil
}

func validateMaxSize(v int) error {
	if v == MaxSizeUnlimited || v >= MinMaxSize && v <= MaxMaxSize {
		return nil
	}
	return outOfRange("maxsize", MinMaxSize, MaxMaxSize)
}

// validateMessage accepts only valid UTF-8 and returns the message's length
// in UTF-16 code units, the unit of JavaScript's String.length that Node
// rsmq compares with maxsize.
func validateMessage(msg string) (int, error) {
	if !utf8.ValidString(msg) {
		return 0, &ValidationError{Field: "message", Msg: "Message must be valid UTF-8", Err: ErrMessageNotString}
	}
	return UTF16Len(msg), nil
}

// UTF16Len is the length of s in UTF-16 code units: JavaScript's
// String.length, which Node rsmq compares with a queue's maxsize.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func (cfg QueueConfig) validate() error {
	if err := validateSeconds("vt", cfg.VT, false); err != nil {
		return err
	}
	if err := validateSeconds("delay", cfg.Delay, false); err != nil {
		return err
	}
	return validateMaxSize(cfg.MaxSize)
}
