package wsconn

import "testing"

func TestMayUseAcceptsOnlyAuthUserIDsAndTheirQueues(t *testing.T) {
	const (
		u     = "6b0b878695ae717936e897ad"
		other = "6b0b878695ae717936e897ae"
	)
	for _, tc := range []struct {
		user, queue string
		want        bool
	}{
		{u, u, true},
		{u, u + "-news", true},
		{u, u + "-a-b-c", true},
		{u, u + "-dlq", true},
		{u, u + "-", false}, // empty suffix
		{u, u + "x", false}, // a longer id, not a suffix
		{u, other, false},   // another user
		{u, other + "-news", false},
		{u, "news", false},
		{u, "x-" + u, false},
		{u, "", false},
		// Ids not of the auth service's form get nothing, not even their
		// own name: with "-" allowed in ids, "ab" would own "ab-cd-x",
		// the queue "x" of user "ab-cd".
		{"ab", "ab", false},
		{"ab", "ab-cd-x", false},
		{"ab-cd", "ab-cd-x", false},
		{"6B0B878695AE717936E897AD", "6B0B878695AE717936E897AD", false}, // uppercase
		{u[:23], u[:23], false},   // 23 characters
		{u + "0", u + "0", false}, // 25 characters
		{"6b0b878695ae717936e897ag", "6b0b878695ae717936e897ag", false}, // not hex
		{"", "", false},
		{"", "-x", false},
	} {
		if got := MayUse(tc.user, tc.queue); got != tc.want {
			t.Errorf("MayUse(%q, %q) = %v, want %v", tc.user, tc.queue, got, tc.want)
		}
	}
}
