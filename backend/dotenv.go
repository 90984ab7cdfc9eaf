package backend

import (
	"fmt"
	"sort"
	"strings"
)

// renderDotenv returns env as lines NAME='value', sorted by name, for a
// POSIX shell to read with `set -a; . ./file`. Single quotes keep every
// character literal - newlines, '$', '`', '"' and '\' included - so the
// only character to escape is the single quote itself: it closes the
// quoted run, adds an escaped quote (\') and opens the next run. Values
// without a single quote are read the same way by python-dotenv and docker
// compose. Names must be valid environment variable names and values must
// not hold NUL, which no environment variable can; the catalogue and the
// provider-token writes ensure both, and renderDotenv refuses anything
// else rather than emit a line a shell would misread.
func renderDotenv(env map[string]string) (string, error) {
	names := make([]string, 0, len(env))
	for name := range env {
		if !envNameRegex.MatchString(name) {
			return "", fmt.Errorf("%q is not an environment variable name", truncateForMessage(name))
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var out strings.Builder
	for _, name := range names {
		value := env[name]
		if strings.IndexByte(value, 0) >= 0 {
			return "", fmt.Errorf("the value of %s contains NUL", name)
		}
		out.WriteString(name)
		out.WriteString("='")
		out.WriteString(strings.ReplaceAll(value, "'", `'\''`))
		out.WriteString("'\n")
	}
	return out.String(), nil
}
