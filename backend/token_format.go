package backend

import (
	"fmt"
	"hash/crc32"
	"io"

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
