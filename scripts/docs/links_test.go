package docs

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// TestMarkdownLinks resolves every relative link and every #anchor in every
// Markdown file of the repository and fails on each one that leads nowhere.
func TestMarkdownLinks(t *testing.T) {
	root := repoRoot(t)
	fsys := os.DirFS(root)
	files, err := markdownFiles(root, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(files, "README.md") || len(files) < 2 {
		t.Fatalf("found %v under %s: not the repository", files, root)
	}
	c := newChecker(fsys)
	links := 0
	for _, f := range files {
		n, problems, err := c.check(f)
		if err != nil {
			t.Fatal(err)
		}
		links += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	if links < 10 {
		t.Fatalf("only %d relative links in %d files: the scan is broken", links, len(files))
	}
	t.Logf("%d relative links checked in %d Markdown files", links, len(files))
}

// TestCheckerFindsBrokenLinks proves the checker on pages with known faults.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	fsys := fstest.MapFS{
		"README.md": {Data: []byte(strings.Join([]string{
			"# Title",
			"## The portal — `cmd/portal`",
			"## Setup",
			"## Setup",
			"See [portal](#the-portal--cmdportal), [second setup](#setup-1), [part](docs/README.md#part-two).",
			"![shot](docs/shot.png) [dir](docs/) [code](main.go#L3-L5) [web](https://example.com/x#y) [mail](mailto:a@b)",
			"[bad anchor](#setup-2) [bad file](docs/missing.md) [bad part anchor](docs/README.md#part-3)",
			"[escape](../outside.md) [code anchor](main.go#main) ![bad image](docs/nope.png)",
			"`[in code](nowhere.md)`",
			"```",
			"[in a fence](nowhere.md)",
			"```",
			"[ref]: docs/gone.md",
			`<a href="docs/README.md#part-two">ok</a> <img src="docs/none.png">`,
		}, "\n"))},
		"docs/README.md": {Data: []byte("# Part *two*\n\nBack [home](../README.md#title).\n")},
		"docs/shot.png":  {Data: []byte("png")},
		"main.go":        {Data: []byte("package main\n")},
	}
	c := newChecker(fsys)
	n, problems, err := c.check("README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`README.md:7: "#setup-2": no heading or anchor "setup-2" in README.md`,
		`README.md:7: "docs/missing.md": docs/missing.md does not exist`,
		`README.md:7: "docs/README.md#part-3": no heading or anchor "part-3" in docs/README.md`,
		`README.md:8: "../outside.md": leaves the repository`,
		`README.md:8: "main.go#main": main.go is not Markdown: only #L<n> anchors`,
		`README.md:8: "docs/nope.png": docs/nope.png does not exist`,
		`README.md:13: "docs/gone.md": docs/gone.md does not exist`,
		`README.md:14: "docs/none.png": docs/none.png does not exist`,
	}
	if strings.Join(problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
	if n != 15 {
		t.Errorf("checked %d relative links, want 15", n)
	}
	if _, problems, _ := c.check("docs/README.md"); len(problems) != 0 {
		t.Errorf("docs/README.md: %v", problems)
	}
}

func TestSlugs(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Quickstart", "quickstart"},
		{"How users and organizations are modelled", "how-users-and-organizations-are-modelled"},
		{"The Access Tokens portal — `cmd/planqk-portal`", "the-access-tokens-portal--cmdplanqk-portal"},
		{"Personal access tokens — `users/<user>/tokens/…`", "personal-access-tokens--usersusertokens"},
		{"`verify` — for the PlanQK API", "verify--for-the-planqk-api"},
		{"Upgrading from v0.1.0", "upgrading-from-v010"},
		{"Running in production (HA)", "running-in-production-ha"},
		{"Governance: inventory, last use, reminders, offboarding", "governance-inventory-last-use-reminders-offboarding"},
		{"**Bold** and [a link](x.md) and `last_used_at`", "bold-and-a-link-and-last_used_at"},
		{"Ünïcode Überschrift", "ünïcode-überschrift"},
		{`Escaped \_underscore\_`, "escaped-_underscore_"},
	} {
		if got := githubSlug(headingText(tc.heading)); got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
	// Duplicates get -1, -2, ... and a heading that already has such a
	// name pushes the next duplicate further, as github-slugger does.
	s := slugger{}
	var got []string
	for _, h := range []string{"Tests", "Tests", "Tests 1", "Tests", "Tests-1"} {
		got = append(got, s.slug(headingText(h)))
	}
	if want := "tests tests-1 tests-1-1 tests-2 tests-1-2"; strings.Join(got, " ") != want {
		t.Errorf("duplicates: %s, want %s", strings.Join(got, " "), want)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/planqk/vault-plugin-secrets-planqk\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.mod of the plugin module) not found")
		}
		dir = parent
	}
}

// markdownFiles lists the repository's Markdown files: those git tracks or
// would add (not ignored, so no build output and no module copy such as
// scripts/vault/sdk). Without git, every file outside hidden directories
// and bin/.
func markdownFiles(root string, fsys fs.FS) ([]string, error) {
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md", "*.MD")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if f == "" {
				continue
			}
			if _, err := fs.Stat(fsys, f); err == nil { // deleted but not yet committed: gone
				files = append(files, f)
			}
		}
		sort.Strings(files)
		return files, nil
	}
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || p == "bin" || d.Name() == "node_modules") {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(strings.ToLower(p), ".md") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type checker struct {
	fsys    fs.FS
	anchors map[string]map[string]bool // Markdown file -> its anchors
}

func newChecker(fsys fs.FS) *checker {
	return &checker{fsys: fsys, anchors: map[string]map[string]bool{}}
}

// link is a link destination found on a line of a page.
type link struct {
	line   int
	target string
}

var (
	fenceRE      = regexp.MustCompile("^\\s*(`{3,}|~{3,})")
	atxRE        = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$`)
	closingRE    = regexp.MustCompile(`[ \t]+#+$`)
	setextRE     = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	inlineRE     = regexp.MustCompile(`\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	referenceRE  = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	htmlLinkRE   = regexp.MustCompile(`(?i)\b(?:href|src)\s*=\s*"([^"]*)"`)
	htmlAnchorRE = regexp.MustCompile(`(?i)\b(?:id|name)\s*=\s*"([^"]*)"`)
	schemeRE     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	lineAnchorRE = regexp.MustCompile(`^L\d+(-L\d+)?$`)
	listItemRE   = regexp.MustCompile(`^\s*([-*+]|\d+[.)])\s`)
)

// scan returns a page's anchors (heading slugs, HTML ids and names) and its
// link destinations, outside fenced code and code spans.
func scan(text string) (map[string]bool, []link) {
	anchors := map[string]bool{}
	var links []link
	s := slugger{}
	var fence string
	prev := ""
	for i, raw := range strings.Split(text, "\n") {
		if m := fenceRE.FindStringSubmatch(raw); m != nil {
			switch {
			case fence == "":
				fence = m[1]
			case m[1][0] == fence[0] && len(m[1]) >= len(fence) && strings.TrimSpace(raw) == m[1]:
				fence = ""
			}
			prev = ""
			continue
		}
		if fence != "" {
			continue
		}
		line := raw
		for _, sp := range codeSpans(raw) {
			line = line[:sp[0]] + strings.Repeat(" ", sp[1]-sp[0]) + line[sp[1]:]
		}
		if m := atxRE.FindStringSubmatch(raw); m != nil {
			anchors[s.slug(headingText(closingRE.ReplaceAllString(m[2], "")))] = true
		} else if setextRE.MatchString(line) && isParagraph(prev) {
			anchors[s.slug(headingText(prev))] = true
		}
		for _, m := range htmlAnchorRE.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		for _, re := range []*regexp.Regexp{inlineRE, referenceRE, htmlLinkRE} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				links = append(links, link{line: i + 1, target: strings.Trim(m[1], "<>")})
			}
		}
		prev = raw
	}
	return anchors, links
}

func isParagraph(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "|") && !strings.HasPrefix(t, "<") &&
		!strings.HasPrefix(t, ">") && !listItemRE.MatchString(line)
}

var (
	mdLinkRE   = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTagRE  = regexp.MustCompile(`<[^>]+>`)
	emphasisRE = regexp.MustCompile(`\*+|(^|\W)_+|_+(\W|$)`)
	escapeRE   = regexp.MustCompile(`\\([!-/:-@\[-` + "`" + `{-~])`)
)

// headingText is the text GitHub renders for a heading's Markdown: code
// spans without their backticks, links as their text, no emphasis markers
// or HTML tags, backslash escapes resolved.
func headingText(md string) string {
	var b strings.Builder
	at := 0
	for _, sp := range codeSpans(md) {
		b.WriteString(plainText(md[at:sp[0]]))
		b.WriteString(md[sp[0]+sp[2] : sp[1]-sp[2]])
		at = sp[1]
	}
	b.WriteString(plainText(md[at:]))
	return strings.TrimSpace(b.String())
}

// codeSpans finds a line's code spans: {start, end, backticks}. A span
// opens with a run of backticks and closes with a run of the same length.
func codeSpans(line string) [][3]int {
	var spans [][3]int
	run := func(i int) int {
		j := i
		for j < len(line) && line[j] == '`' {
			j++
		}
		return j - i
	}
	for i := 0; i < len(line); {
		if line[i] != '`' {
			i++
			continue
		}
		n := run(i)
		closed := false
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := run(j)
			if m == n {
				spans = append(spans, [3]int{i, j + m, n})
				i, closed = j+m, true
				break
			}
			j += m
		}
		if !closed {
			i += n
		}
	}
	return spans
}

func plainText(md string) string {
	md = mdLinkRE.ReplaceAllString(md, "$1")
	md = htmlTagRE.ReplaceAllString(md, "")
	md = strings.ReplaceAll(md, `\_`, "\x00")
	md = emphasisRE.ReplaceAllString(md, "$1$2")
	md = strings.ReplaceAll(md, "\x00", "_")
	return escapeRE.ReplaceAllString(md, "$1")
}

// githubSlug is GitHub's anchor for a heading's text (github-slugger):
// lower case, letters, digits, '_' and '-' kept, each space a '-',
// everything else dropped.
func githubSlug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// slugger numbers duplicate slugs within one page as GitHub does.
type slugger map[string]int

func (s slugger) slug(text string) string {
	base := githubSlug(text)
	result := base
	for {
		if _, taken := s[result]; !taken {
			break
		}
		s[base]++
		result = base + "-" + strconv.Itoa(s[base])
	}
	s[result] = 0
	return result
}

func (c *checker) anchorsOf(file string) (map[string]bool, error) {
	if a, ok := c.anchors[file]; ok {
		return a, nil
	}
	data, err := fs.ReadFile(c.fsys, file)
	if err != nil {
		return nil, err
	}
	a, _ := scan(string(data))
	c.anchors[file] = a
	return a, nil
}

// check returns how many relative links the page has and one message per
// link that does not resolve.
func (c *checker) check(file string) (int, []string, error) {
	data, err := fs.ReadFile(c.fsys, file)
	if err != nil {
		return 0, nil, err
	}
	_, links := scan(string(data))
	n := 0
	var problems []string
	for _, l := range links {
		if schemeRE.MatchString(l.target) || strings.HasPrefix(l.target, "//") {
			continue
		}
		n++
		if msg := c.resolve(file, l.target); msg != "" {
			problems = append(problems, fmt.Sprintf("%s:%d: %q: %s", file, l.line, l.target, msg))
		}
	}
	return n, problems, nil
}

func (c *checker) resolve(file, target string) string {
	p, anchor, _ := strings.Cut(target, "#")
	if unescaped, err := url.PathUnescape(p); err == nil {
		p = unescaped
	}
	if q, _, found := strings.Cut(p, "?"); found {
		p = q
	}
	dest := file
	if p != "" {
		if strings.HasPrefix(p, "/") {
			dest = path.Clean(strings.TrimPrefix(p, "/"))
		} else {
			dest = path.Join(path.Dir(file), p)
		}
		if dest == ".." || strings.HasPrefix(dest, "../") {
			return "leaves the repository"
		}
		info, err := fs.Stat(c.fsys, dest)
		if err != nil {
			return dest + " does not exist"
		}
		if info.IsDir() {
			if anchor == "" {
				return ""
			}
			dest = path.Join(dest, "README.md")
			if _, err := fs.Stat(c.fsys, dest); err != nil {
				return "an anchor on a directory without README.md"
			}
		}
	}
	if anchor == "" {
		return ""
	}
	if !strings.HasSuffix(strings.ToLower(dest), ".md") {
		if lineAnchorRE.MatchString(anchor) {
			return ""
		}
		return dest + " is not Markdown: only #L<n> anchors"
	}
	anchors, err := c.anchorsOf(dest)
	if err != nil {
		return err.Error()
	}
	if !anchors[anchor] {
		return fmt.Sprintf("no heading or anchor %q in %s", anchor, dest)
	}
	return ""
}
