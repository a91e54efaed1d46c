package rsmq_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// The patterns of RSMQ.md.
var (
	queueNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,160}$`)
	idRE        = regexp.MustCompile(`^[a-zA-Z0-9:]{32}$`)
)

func TestValidateQueueNameFollowsRSMQPattern(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"q", nil},
		{"Queue_1-x", nil},
		{strings.Repeat("a", 160), nil},
		{"", rsmq.ErrMissingParameter},
		{strings.Repeat("a", 161), rsmq.ErrInvalidFormat},
		{"a b", rsmq.ErrInvalidFormat},
		{"a.b", rsmq.ErrInvalidFormat},
		{"a:b", rsmq.ErrInvalidFormat},
		{"ä", rsmq.ErrInvalidFormat},
		{"q\n", rsmq.ErrInvalidFormat},
	} {
		err := rsmq.ValidateQueueName(tc.name)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("ValidateQueueName(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestValidateIDFollowsRSMQPattern(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want error
	}{
		{strings.Repeat("a", 32), nil},
		{"mhx8v0k1z2AbCdEfGhIjKlMnOpQrStUv", nil},
		{strings.Repeat(":", 32), nil},
		{"", rsmq.ErrMissingParameter},
		{strings.Repeat("a", 31), rsmq.ErrInvalidFormat},
		{strings.Repeat("a", 33), rsmq.ErrInvalidFormat},
		{strings.Repeat("a", 31) + "-", rsmq.ErrInvalidFormat},
		{strings.Repeat("a", 30) + "é", rsmq.ErrInvalidFormat}, // 32 bytes, 31 runes
	} {
		err := rsmq.ValidateID(tc.id)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("ValidateID(%q) = %v, want %v", tc.id, err, tc.want)
		}
	}
}

func TestValidationErrorNamesFieldAndNodeMessage(t *testing.T) {
	err := rsmq.ValidateQueueName("a b")
	if got, want := err.Error(), "rsmq: invalid qname: Invalid qname format"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var ve *rsmq.ValidationError
	if !errors.As(err, &ve) || ve.Field != "qname" {
		t.Errorf("errors.As ValidationError: %#v", err)
	}
	if got := rsmq.ErrorName(err); got != "invalidFormat" {
		t.Errorf("ErrorName = %q", got)
	}
	if got, want := rsmq.ValidateID("").Error(), "rsmq: invalid id: No id supplied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func FuzzValidateQueueName(f *testing.F) {
	for _, s := range []string{"", "q", "a b", strings.Repeat("z", 160), strings.Repeat("z", 161), "ä", "_-", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := rsmq.ValidateQueueName(name)
		if want := queueNameRE.MatchString(name); want != (err == nil) {
			t.Fatalf("ValidateQueueName(%q) = %v, regexp says valid=%v", name, err, want)
		}
		if err != nil && !errors.Is(err, rsmq.ErrInvalidFormat) && !errors.Is(err, rsmq.ErrMissingParameter) {
			t.Fatalf("ValidateQueueName(%q) = %v: not a validation sentinel", name, err)
		}
	})
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"", strings.Repeat("a", 32), strings.Repeat(":", 32), strings.Repeat("a", 31) + "-", strings.Repeat("é", 16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := rsmq.ValidateID(id)
		if want := idRE.MatchString(id); want != (err == nil) {
			t.Fatalf("ValidateID(%q) = %v, regexp says valid=%v", id, err, want)
		}
		if err != nil && !errors.Is(err, rsmq.ErrInvalidFormat) && !errors.Is(err, rsmq.ErrMissingParameter) {
			t.Fatalf("ValidateID(%q) = %v: not a validation sentinel", id, err)
		}
	})
}

func TestUTF16LenCountsJavaScriptStringLength(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"é€", 2},        // 2- and 3-byte UTF-8, one unit each
		{"😀", 2},         // outside the BMP: a surrogate pair
		{"a😀b\u00e9", 5}, // mixed
	} {
		if got := rsmq.UTF16Len(tt.in); got != tt.want {
			t.Errorf("UTF16Len(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
