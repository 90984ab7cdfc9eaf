package backend

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerateToken_isWellFormedAndUnique(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		token, err := generateToken("plqk_", rand.Reader)
		require.NoError(t, err)
		require.Len(t, token, len("plqk_")+tokenRandomLength+tokenChecksumLength)
		require.True(t, strings.HasPrefix(token, "plqk_"))
		require.True(t, wellFormedToken(token, "plqk_"), token)
		require.False(t, seen[token])
		seen[token] = true
	}
}

func TestWellFormedToken_rejectsGarbledTokens(t *testing.T) {
	token, err := generateToken("plqk_", rand.Reader)
	require.NoError(t, err)
	body := token[len("plqk_"):]

	swapped := []byte(body)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	if swapped[3] == swapped[4] {
		swapped[3] = 'A' + (swapped[3]-'A'+1)%26
	}
	changed := []byte(body)
	if changed[0] == 'A' {
		changed[0] = 'B'
	} else {
		changed[0] = 'A'
	}

	cases := map[string]string{
		"other prefix":        "ghp_" + body,
		"no prefix":           body,
		"truncated":           token[:len(token)-1],
		"extended":            token + "A",
		"one character wrong": "plqk_" + string(changed),
		"transposed":          "plqk_" + string(swapped),
		"checksum altered":    token[:len(token)-1] + string(nextBase62(token[len(token)-1])),
		"non base62":          token[:10] + "_" + token[11:],
		"non ASCII":           token[:10] + "é" + token[12:],
		"empty":               "",
		"prefix only":         "plqk_",
	}
	for name, garbled := range cases {
		t.Run(name, func(t *testing.T) {
			require.False(t, wellFormedToken(garbled, "plqk_"))
		})
	}
}

func nextBase62(c byte) byte {
	i := strings.IndexByte(base62Alphabet, c)
	return base62Alphabet[(i+1)%len(base62Alphabet)]
}

func TestTokenChecksum_isFixedWidthBase62(t *testing.T) {
	for _, random := range []string{"", "A", strings.Repeat("z", tokenRandomLength), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		sum := tokenChecksum(random)
		require.Len(t, sum, tokenChecksumLength)
		for i := 0; i < len(sum); i++ {
			require.GreaterOrEqual(t, base62Values[sum[i]], int8(0))
		}
	}
}

// FuzzWellFormedToken checks that parsing never panics and accepts only
// tokens of the exact shape whose checksum matches their random part.
func FuzzWellFormedToken(f *testing.F) {
	valid, err := generateToken("plqk_", rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{valid, "", "plqk_", valid[:len(valid)-1], valid + "x", "ghp_" + valid[5:], "plqk_\x00\xff", strings.Repeat("A", 41)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if !wellFormedToken(token, "plqk_") {
			return
		}
		if len(token) != len("plqk_")+tokenRandomLength+tokenChecksumLength || !strings.HasPrefix(token, "plqk_") {
			t.Fatalf("accepted a token of the wrong shape: %q", token)
		}
		random := token[len("plqk_") : len("plqk_")+tokenRandomLength]
		if tokenChecksum(random) != token[len(token)-tokenChecksumLength:] {
			t.Fatalf("accepted a token whose checksum does not match: %q", token)
		}
	})
}

// garble changes a token's last character to another one of the alphabet,
// so that the token is always malformed.
func garble(token string) string {
	return token[:len(token)-1] + string(nextBase62(token[len(token)-1]))
}

// TokenPattern is what scanners match; only the checksum is left to
// WellFormedToken.
func TestTokenPattern_matchesLengthAndAlphabetOnly(t *testing.T) {
	for _, prefix := range []string{"plqk_", "acme.", "-x-"} {
		pattern := regexp.MustCompile(TokenPattern(prefix))
		for i := 0; i < 100; i++ {
			token, err := GenerateToken(prefix, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if !pattern.MatchString("key = " + token + "\n") {
				t.Fatalf("%s does not match %s", token, pattern)
			}
			if !WellFormedToken(token, prefix) || WellFormedToken(garble(token), prefix) {
				t.Fatalf("WellFormedToken is wrong about %s or its garbled copy", token)
			}
			if !pattern.MatchString(garble(token)) {
				t.Fatalf("a garbled token has the right shape: the pattern must still match it")
			}
			lookalikes := []string{token + "x", "x" + token[1:] + "A", token[:len(token)-1]}
			if isWordByte(prefix[0]) {
				lookalikes = append(lookalikes, "qq"+token)
			}
			for _, lookalike := range lookalikes {
				if pattern.FindString(lookalike) == token {
					t.Fatalf("%s matches inside %s", token, lookalike)
				}
			}
		}
	}
	if regexp.MustCompile(TokenPattern("plqk_")).MatchString("ghp_" + strings.Repeat("a", 36)) {
		t.Fatal("another prefix matches")
	}
}
