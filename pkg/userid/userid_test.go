package userid

import "testing"

func TestValidAcceptsOnlyLowercaseObjectIDHex(t *testing.T) {
	for id, want := range map[string]bool{
		"6b0b878695ae717936e897ad":  true,
		"000000000000000000000000":  true,
		"ffffffffffffffffffffffff":  true,
		"6B0B878695AE717936E897AD":  false, // uppercase
		"6b0b878695ae717936e897a":   false, // 23
		"6b0b878695ae717936e897ad0": false, // 25
		"6b0b878695ae717936e897ag":  false, // not hex
		"6b0b878695ae717936e89-ad":  false,
		"":                          false,
		"u1":                        false,
	} {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}

func FuzzValidMatchesTheRule(f *testing.F) {
	f.Add("6b0b878695ae717936e897ad")
	f.Add("6b0b878695ae717936e897aD")
	f.Fuzz(func(t *testing.T, id string) {
		if !Valid(id) {
			return
		}
		if len(id) != Len {
			t.Fatalf("Valid(%q) with length %d", id, len(id))
		}
		for _, c := range id {
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				t.Fatalf("Valid(%q) with %q", id, c)
			}
		}
	})
}
