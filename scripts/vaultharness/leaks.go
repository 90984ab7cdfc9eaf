package vaultharness

import "bytes"

// secretPrefixLength is how many leading bytes of each secret a SecretSet
// indexes.
const secretPrefixLength = 8

// SecretSet finds secrets in logs and storage. It reads its input once,
// looking each position's next bytes up among the secrets' beginnings, so
// that checking thousands of secrets against a large trace log costs about
// as much as checking one.
type SecretSet struct {
	byPrefix map[string][]string
	short    []string // shorter than secretPrefixLength
}

// NewSecretSet indexes secrets.
func NewSecretSet(secrets []string) *SecretSet {
	set := &SecretSet{byPrefix: make(map[string][]string, len(secrets))}
	for _, secret := range secrets {
		if len(secret) < secretPrefixLength {
			set.short = append(set.short, secret)
			continue
		}
		prefix := secret[:secretPrefixLength]
		set.byPrefix[prefix] = append(set.byPrefix[prefix], secret)
	}
	return set
}

// FoundIn returns the secrets that occur in data, each once.
func (set *SecretSet) FoundIn(data []byte) []string {
	var found []string
	for _, secret := range set.short {
		if bytes.Contains(data, []byte(secret)) {
			found = append(found, secret)
		}
	}
	seen := make(map[string]bool)
	for i := 0; i+secretPrefixLength <= len(data); i++ {
		candidates, ok := set.byPrefix[string(data[i:i+secretPrefixLength])]
		if !ok {
			continue
		}
		for _, secret := range candidates {
			if !seen[secret] && bytes.HasPrefix(data[i:], []byte(secret)) {
				seen[secret] = true
				found = append(found, secret)
			}
		}
	}
	return found
}
