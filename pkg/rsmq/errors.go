package rsmq

import (
	"errors"
	"strconv"
)

// The errors of RSMQ, one per error name of the Node package. Every error this
// package returns for one of these conditions matches its sentinel with errors.Is.
var (
	// ErrQueueNotFound is Node's queueNotFound: the queue's hash has no attributes.
	ErrQueueNotFound = errors.New("rsmq: queue not found")
	// ErrQueueExists is Node's queueExists: CreateQueue on an existing queue.
	ErrQueueExists = errors.New("rsmq: queue exists")
	// ErrMessageTooLong is Node's messageTooLong: the message has more UTF-16
	// code units than the queue's maxsize.
	ErrMessageTooLong = errors.New("rsmq: message too long")
	// ErrMessageNotString is Node's messageNotString; here: the message is not valid UTF-8.
	ErrMessageNotString = errors.New("rsmq: message not string")
	// ErrMissingParameter is Node's missingParameter: a required argument is empty.
	ErrMissingParameter = errors.New("rsmq: missing parameter")
	// ErrInvalidFormat is Node's invalidFormat: a queue name or id does not match its pattern.
	ErrInvalidFormat = errors.New("rsmq: invalid format")
	// ErrInvalidValue is Node's invalidValue: a number is out of its range.
	ErrInvalidValue = errors.New("rsmq: invalid value")
	// ErrNoAttributeSupplied is Node's noAttributeSupplied: SetQueueAttributes without changes.
	ErrNoAttributeSupplied = errors.New("rsmq: no attribute supplied")

	// ErrCorrupt (no Node equivalent) reports data that is not in the RSMQ
	// format: a queue key of the wrong type, a non-numeric attribute, a
	// malformed receipt. It concerns one queue or one item, never a call.
	ErrCorrupt = errors.New("rsmq: corrupt data")

	// ErrNotReplicated (no Node equivalent): a durable send stored the
	// message on the master, but fewer than Options.MinReplicas replicas
	// confirmed it within Options.ReplicaTimeout, so a failover could lose
	// it. Retrying the same send is safe.
	ErrNotReplicated = errors.New("rsmq: not confirmed by enough replicas")
)

// ValidationError reports an invalid argument. Field names the argument
// ("qname", "id", "vt", "delay", "maxsize", "message", ...), Msg is the Node
// package's message for it, and Err is the sentinel (ErrMissingParameter,
// ErrInvalidFormat, ErrInvalidValue or ErrMessageNotString).
type ValidationError struct {
	Field string
	Msg   string
	Err   error
}

// Error names the field, e.g. "rsmq: invalid qname: Invalid qname format".
func (e *ValidationError) Error() string { return "rsmq: invalid " + e.Field + ": " + e.Msg }

// Unwrap returns the sentinel, so errors.Is(err, ErrInvalidValue) works.
func (e *ValidationError) Unwrap() error { return e.Err }

// ErrorName returns the Node rsmq error name of err ("queueNotFound",
// "invalidValue", ...), or "" when err is not one of this package's errors.
func ErrorName(err error) string {
	for _, n := range []struct {
		err  error
		name string
	}{
		{ErrQueueNotFound, "queueNotFound"},
		{ErrQueueExists, "queueExists"},
		{ErrMessageTooLong, "messageTooLong"},
		{ErrMessageNotString, "messageNotString"},
		{ErrMissingParameter, "missingParameter"},
		{ErrInvalidFormat, "invalidFormat"},
		{ErrInvalidValue, "invalidValue"},
		{ErrNoAttributeSupplied, "noAttributeSupplied"},
	} {
		if errors.Is(err, n.err) {
			return n.name
		}
	}
	return ""
}

func missing(field string) error {
	return &ValidationError{Field: field, Msg: "No " + field + " supplied", Err: ErrMissingParameter}
}

func badFormat(field string) error {
	return &ValidationError{Field: field, Msg: "Invalid " + field + " format", Err: ErrInvalidFormat}
}

func outOfRange(field string, lo, hi int) error {
	return &ValidationError{
		Field: field,
		Msg:   field + " must be between " + strconv.Itoa(lo) + " and " + strconv.Itoa(hi),
		Err:   ErrInvalidValue,
	}
}
