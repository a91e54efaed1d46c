package passwords

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashComparesAndUnknownUserAlwaysFails(t *testing.T) {
	h, err := NewHasher(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(hash); c != bcrypt.MinCost {
		t.Fatalf("cost %d", c)
	}
	if err := h.Compare(ctx, hash, "correct horse"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, tc := range []struct {
		name string
		hash []byte
		pw   string
	}{
		{"wrong password", hash, "wrong horse"},
		{"unknown user", nil, "correct horse"},
		{"corrupt hash", []byte("not a bcrypt hash"), "correct horse"},
	} {
		if err := h.Compare(ctx, tc.hash, tc.pw); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", tc.name, err)
		}
	}
	if c := h.DummyCost(); c != bcrypt.MinCost {
		t.Fatalf("dummy hash cost %d, want the configured cost", c)
	}
}

func TestDummyHashFollowsTheCostOfStoredHashesAfterACostChange(t *testing.T) {
	ctx := context.Background()
	old, err := NewHasher(bcrypt.MinCost + 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHasher(bcrypt.MinCost) // the cost was lowered; stored hashes keep theirs
	if err != nil {
		t.Fatal(err)
	}
	if c := h.DummyCost(); c != bcrypt.MinCost {
		t.Fatalf("before any login: dummy cost %d, want the configured %d", c, bcrypt.MinCost)
	}
	stored, err := old.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h.Compare(ctx, stored, "wrong horse"); !errors.Is(err, ErrMismatch) {
			t.Fatal(err)
		}
	}
	if c := h.DummyCost(); c != bcrypt.MinCost+1 {
		t.Fatalf("after logins against cost-%d hashes: dummy cost %d, want %d", bcrypt.MinCost+1, c, bcrypt.MinCost+1)
	}
	if err := h.Compare(ctx, nil, "correct horse"); !errors.Is(err, ErrMismatch) {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(h.dummies[bcrypt.MinCost+1]); c != bcrypt.MinCost+1 {
		t.Fatalf("unknown user compared against a cost-%d dummy, want %d", c, bcrypt.MinCost+1)
	}
}

func TestHasherRefusesBadCostAndWaitsRespectingContext(t *testing.T) {
	if _, err := NewHasher(3); err == nil {
		t.Fatal("cost 3 accepted")
	}
	h, err := NewHasher(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Fill every slot: a new hash must wait, and give up with its context.
	for range cap(h.sem) {
		h.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "correct horse"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with all slots busy and a canceled context: %v", err)
	}
}
