package vaultharness

import (
	"slices"
	"strings"
	"testing"
)

func TestSecretSet(t *testing.T) {
	log := []byte(strings.Repeat("noise plqk_ ", 1000) + "token=plqk_0123456789abcdef end pw-ab " + strings.Repeat("x", 100) + "tail-secret-value")
	secrets := []string{
		"plqk_0123456789abcdef", // in the middle
		"plqk_0123456789abcdeX", // shares the indexed prefix, absent
		"tail-secret-value",     // at the very end
		"pw-ab",                 // shorter than the indexed prefix
		"pw-abc",                // short and absent
		"absent-secret-value",
	}
	got := NewSecretSet(secrets).FoundIn(log)
	slices.Sort(got)
	want := []string{"plqk_0123456789abcdef", "pw-ab", "tail-secret-value"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
