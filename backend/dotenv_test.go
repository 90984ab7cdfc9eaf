package backend

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shells are the shells a runtime sources the dotenv text with: sh (dash
// on Debian) and bash; sh must exist.
func shells(t testing.TB) []string {
	t.Helper()
	var found []string
	for _, name := range []string{"sh", "bash"} {
		if path, err := exec.LookPath(name); err == nil {
			found = append(found, path)
		}
	}
	require.NotEmpty(t, found, "no POSIX shell on PATH")
	return found
}

// sourceInShell writes text to a file, sources it in shell with set -a as
// a runtime does, and returns the values of names as the shell exported
// them to a child (env -0), read byte for byte.
func sourceInShell(t testing.TB, shell, text string, names []string) map[string]string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "planqk.env")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, "-c", `set -a; . "$1"; exec env -0`, "sh", file)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s could not source the file: %s", shell, stderr.String())
	exported := map[string]string{}
	for _, entry := range strings.Split(string(out), "\x00") {
		if name, value, ok := strings.Cut(entry, "="); ok {
			exported[name] = value
		}
	}
	got := map[string]string{}
	for _, name := range names {
		if value, ok := exported[name]; ok {
			got[name] = value
		}
	}
	return got
}

// hostileValues are what credentials may contain and what a shell would
// otherwise interpret: quotes of both kinds, expansions, command
// substitution, escapes, newlines, comments, whitespace, non-ASCII.
var hostileValues = map[string]string{
	"PLAIN":       "abc123",
	"EMPTY":       "",
	"SINGLE":      "it's",
	"ONLY_QUOTE":  "'",
	"QUOTES":      `'"'"''`,
	"DOUBLE":      `say "hi"`,
	"DOLLAR":      "$HOME ${PATH} $(id) $((1+1))",
	"BACKTICK":    "`id`",
	"BACKSLASH":   `C:\new\table\\`,
	"ESCAPED_Q":   `\'`,
	"NEWLINES":    "line1\nline2\n\n",
	"CR_TAB":      "a\r\tb",
	"COMMENT":     "# not a comment",
	"SEMICOLON":   "x; rm -rf /tmp/never",
	"SPACES":      "  leading and trailing  ",
	"EQUALS":      "a=b=c",
	"GLOB":        "* ? [a-z]",
	"UNICODE":     "Grüße ✓ 量子",
	"PEM":         "-----BEGIN KEY-----\nMIIB'x\"y$z\n-----END KEY-----\n",
	"AMPERSAND":   "a && b || c | d > e < f & ",
	"LONG_QUOTES": strings.Repeat(`'\`, 500),
}

func TestDotenv_aShellReadsBackEveryValueExactly(t *testing.T) {
	text, err := renderDotenv(hostileValues)
	require.NoError(t, err)
	names := make([]string, 0, len(hostileValues))
	for name := range hostileValues {
		names = append(names, name)
	}
	for _, shell := range shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			got := sourceInShell(t, shell, text, names)
			for _, name := range names {
				require.Contains(t, got, name)
				require.True(t, got[name] == hostileValues[name], "%s read %s back wrong", shell, name)
			}
		})
	}
}

func TestDotenv_formatIsSortedSingleQuotedLines(t *testing.T) {
	text, err := renderDotenv(map[string]string{"B": "it's", "A": "x\ny", "C": ""})
	require.NoError(t, err)
	require.Equal(t, "A='x\ny'\nB='it'\\''s'\nC=''\n", text)

	text, err = renderDotenv(map[string]string{})
	require.NoError(t, err)
	require.Equal(t, "", text)
}

func TestDotenv_refusesWhatAShellWouldMisread(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"name with a space":        {"A B": "x"},
		"name with a quote":        {"A'": "x"},
		"name with an expansion":   {"A$(id)": "x"},
		"name starting with digit": {"1A": "x"},
		"empty name":               {"": "x"},
		"value with NUL":           {"A": "x\x00y"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderDotenv(env)
			require.Error(t, err)
			for _, value := range env {
				require.NotContains(t, err.Error(), value)
			}
		})
	}
}

// FuzzRenderDotenv: whatever the value, sh reads back exactly that value
// (values with NUL are refused: no environment variable can hold one).
func FuzzRenderDotenv(f *testing.F) {
	for _, value := range hostileValues {
		f.Add(value)
	}
	f.Add("\xff\xfe not UTF-8")
	shell := shells(f)[0]
	f.Fuzz(func(t *testing.T, value string) {
		text, err := renderDotenv(map[string]string{"V": value, "AFTER": "sentinel"})
		if strings.IndexByte(value, 0) >= 0 {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		got := sourceInShell(t, shell, text, []string{"V", "AFTER"})
		require.True(t, got["V"] == value, "sh read back a different value")
		require.Equal(t, "sentinel", got["AFTER"], "the value spilled into the next line")
	})
}
