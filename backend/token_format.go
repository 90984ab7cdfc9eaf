package backend

import (
	"fmt"
	"hash/crc32"
	"io"
	"regexp"

	"github.com/hashicorp/go-secure-stdlib/base62"
)

// A PAT is <prefix><random><checksum>, as GitHub's tokens are: the prefix
// lets secret scanners find leaked tokens precisely, and the checksum lets
// verify reject a mistyped or truncated token without touching storage.
const (
	// tokenRandomLength base62 characters carry 30*log2(62), about 178 bits.
	tokenRandomLength = 30
	// tokenChecksumLength base62 characters hold any CRC32 (62^6 > 2^32).
	tokenChecksumLength = 6

	// base62Alphabet is the alphabet of go-secure-stdlib/base62, which
	// generates the random part; the checksum uses the same one.
	base62Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

var base62Values = func() (values [256]int8) {
	for i := range values {
		values[i] = -1
	}
	for i := 0; i < len(base62Alphabet); i++ {
		values[base62Alphabet[i]] = int8(i)
	}
	return values
}()

// generateToken returns a new token with the given prefix, drawing its
// randomness from rand (the backend's entropy source).
func generateToken(prefix string, rand io.Reader) (string, error) {
	random, err := base62.RandomWithReader(tokenRandomLength, rand)
	if err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return prefix + random + tokenChecksum(random), nil
}

// wellFormedToken reports whether token has the prefix, the length, the
// alphabet and the checksum of a token this engine issued. It runs in time
// independent of where a mismatch lies in the random part.
func wellFormedToken(token, prefix string) bool {
	if len(token) != len(prefix)+tokenRandomLength+tokenChecksumLength {
		return false
	}
	if token[:len(prefix)] != prefix {
		return false
	}
	body := token[len(prefix):]
	for i := 0; i < len(body); i++ {
		if base62Values[body[i]] < 0 {
			return false
		}
	}
	random, checksum := body[:tokenRandomLength], body[tokenRandomLength:]
	return tokenChecksum(random) == checksum
}

// tokenChecksum encodes the CRC32 of random as fixed-width base62.
func tokenChecksum(random string) string {
	sum := uint64(crc32.ChecksumIEEE([]byte(random)))
	var out [tokenChecksumLength]byte
	for i := tokenChecksumLength - 1; i >= 0; i-- {
		out[i] = base62Alphabet[sum%62]
		sum /= 62
	}
	return string(out[:])
}

// GenerateToken returns a new well-formed token with the prefix, for
// testing scanner rules; the engine issues its tokens itself.
func GenerateToken(prefix string, rand io.Reader) (string, error) {
	return generateToken(prefix, rand)
}

// WellFormedToken reports whether token has the prefix, length, alphabet
// and checksum of a PAT this engine issues with that prefix. Secret
// scanners use it to drop look-alikes offline (cmd/planqk-leakcheck); it
// says nothing about whether the token is active.
func WellFormedToken(token, prefix string) bool {
	return wellFormedToken(token, prefix)
}

// TokenPattern is a regular expression (RE2, as gitleaks and GitHub read
// them) for the PATs with the prefix: length and alphabet. Only
// WellFormedToken can check the checksum.
func TokenPattern(prefix string) string {
	pattern := regexp.QuoteMeta(prefix) + fmt.Sprintf("[%s]{%d}", base62Class, tokenRandomLength+tokenChecksumLength)
	if prefix != "" && isWordByte(prefix[0]) {
		pattern = `\b` + pattern
	}
	return pattern + `\b`
}

// base62Class is base62Alphabet as a character class.
const base62Class = "A-Za-z0-9"

func isWordByte(c byte) bool {
	return c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}
