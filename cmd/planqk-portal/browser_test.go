//go:build portal

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium, headless, with the flags this
// machine needs as root and without internet, through chromedp. One
// browser serves all tests; each person gets a browser context of their
// own (their own cookies), as two people on two machines would.

var shared struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

// sharedBrowser starts Chromium once for the browser tests.
func sharedBrowser(t *testing.T) context.Context {
	t.Helper()
	shared.once.Do(func() {
		profile, err := os.MkdirTemp("", "planqk-portal-chromium-")
		if err != nil {
			shared.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(suite.chromium),
			chromedp.NoSandbox, // Chromium's sandbox does not run as root
			chromedp.DisableGPU,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("no-first-run", true),
			chromedp.UserDataDir(profile),
			// Its shared-memory files too, so that removing the profile
			// leaves nothing behind in /tmp.
			chromedp.Env("TMPDIR="+profile),
			chromedp.WindowSize(1200, 860),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelBrowser := chromedp.NewContext(allocCtx)
		shared.ctx = ctx
		shared.cancel = func() {
			cancelBrowser()
			cancelAlloc()
			os.RemoveAll(profile)
		}
		shared.err = chromedp.Do(ctx) // starts the browser, with no timeout
	})
	if shared.err != nil {
		t.Fatalf("starting Chromium (%s): %v", suite.chromium, shared.err)
	}
	return shared.ctx
}

// stopSharedBrowser ends Chromium after the tests.
func stopSharedBrowser() {
	if shared.cancel != nil {
		shared.cancel()
	}
}

// person is someone using the portal in their own browser context.
type person struct {
	t      *testing.T
	ctx    context.Context
	portal *testPortal
}

// cspRecorder collects Content-Security-Policy violations on every page.
const cspRecorder = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});`

func newPerson(t *testing.T, tp *testPortal) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(sharedBrowser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	contextID := chromedp.FromContext(ctx).BrowserContextID
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: "granted",
			Origin: tp.url, BrowserContextID: contextID,
		}); err != nil {
			t.Fatalf("granting %s: %v", name, err)
		}
	}
	if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		t.Fatal(err)
	}
	return &person{t: t, ctx: ctx, portal: tp}
}

// within runs an action with a time limit, failing the test on error.
func within[T any](p *person, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// do runs steps with a time limit.
func (p *person) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	within(p, what, chromedp.Steps(steps...))
}

// load runs steps that lead to a new page and returns its response.
func (p *person) load(what string, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	if resp == nil {
		p.t.Fatalf("%s: no page loaded", what)
	}
	return resp
}

func (p *person) open(path string) *network.Response {
	p.t.Helper()
	return p.load("opening "+path, chromedp.Navigate(p.portal.url+path))
}

// click clicks the element and waits for the page it leads to.
func (p *person) click(css string) *network.Response {
	p.t.Helper()
	return p.load("clicking "+css, chromedp.Click(chromedp.CSS(css), chromedp.NodeVisible))
}

func (p *person) text(css string) string {
	p.t.Helper()
	return strings.Join(strings.Fields(within(p, "reading "+css, chromedp.Text(chromedp.CSS(css)))), " ")
}

func (p *person) eval(what, js string) string {
	p.t.Helper()
	return within(p, what, chromedp.Evaluate[string](js))
}

func (p *person) location() string {
	p.t.Helper()
	return within(p, "reading the location", chromedp.Location())
}

// expectText fails unless the main content holds every want.
func (p *person) expectText(wants ...string) {
	p.t.Helper()
	text := p.text("body")
	for _, want := range wants {
		if !strings.Contains(text, want) {
			p.t.Errorf("the page %s lacks %q: %s", p.location(), want, text)
		}
	}
}

// screenshot saves the whole page as a PNG for the README.
func (p *person) screenshot(name string) {
	p.t.Helper()
	png := within(p, "taking a screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(suite.screenshots, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// signIn signs in with the keyboard alone: user name, Tab, password, Enter.
func (p *person) signIn(user string) {
	p.t.Helper()
	p.open("/signin")
	p.do("typing the user name", chromedp.Focus(chromedp.ID("username")), chromedp.KeyEvent(user+"\t"+suite.passwords[user]))
	p.load("pressing Enter", chromedp.KeyEvent("\r"))
	if !strings.HasSuffix(p.location(), "/tokens") {
		p.t.Fatalf("signing in %s ended at %s: %s", user, p.location(), p.text("body"))
	}
	p.expectText("Signed in as " + user)
}

// checkPage asserts what every page must have: a sensible title, one
// heading, every control labelled, every action reachable with the Tab
// key, and no Content-Security-Policy violation.
func (p *person) checkPage() {
	p.t.Helper()
	problems := within(p, "checking the page", chromedp.Evaluate[[]string](accessibilityCheck))
	for _, problem := range problems {
		p.t.Errorf("%s: %s", p.location(), problem)
	}
	violations := within(p, "reading CSP violations", chromedp.Evaluate[[]string](`window.__cspViolations || ["no recorder"]`))
	for _, v := range violations {
		p.t.Errorf("%s: Content-Security-Policy violation: %s", p.location(), v)
	}
	p.checkKeyboardReach()
}

// accessibilityCheck returns what a page lacks for people using assistive
// technology.
const accessibilityCheck = `(() => {
  const problems = [];
  const describe = (el) => el.outerHTML.slice(0, 100);
  if (!/^[^·]+ · PlanQK Access Tokens$/.test(document.title) || document.title.startsWith(" ")) {
    problems.push("title: " + JSON.stringify(document.title));
  }
  if (document.documentElement.lang !== "en") problems.push("html lang: " + document.documentElement.lang);
  if (document.querySelectorAll("h1").length !== 1) problems.push("h1 elements: " + document.querySelectorAll("h1").length);
  for (const c of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const labels = [...(c.labels || [])].filter((l) => l.textContent.trim() !== "");
    if (labels.length === 0 && !c.getAttribute("aria-label") && !c.getAttribute("aria-labelledby")) {
      problems.push("control without a label: " + describe(c));
    }
  }
  for (const a of document.querySelectorAll("a[href], button, summary")) {
    const name = (a.getAttribute("aria-label") || a.textContent || "").trim();
    if (name === "") problems.push("action without a name: " + describe(a));
    if (a.tabIndex < 0) problems.push("action out of the tab order: " + describe(a));
  }
  for (const el of document.querySelectorAll("[onclick], div[role=button], span[role=button]")) {
    problems.push("click handler on a non-control: " + describe(el));
  }
  const ids = new Set();
  for (const el of document.querySelectorAll("[id]")) {
    if (ids.has(el.id)) problems.push("duplicate id: " + el.id);
    ids.add(el.id);
  }
  return problems;
})()`

// checkKeyboardReach presses Tab through the page and fails unless every
// visible link, button and form control receives the focus.
func (p *person) checkKeyboardReach() {
	p.t.Helper()
	total := within(p, "marking the actions", chromedp.Evaluate[int](`(() => {
  // Open every disclosure, so that the forms inside are checked too;
  // they are closed again afterwards.
  window.__closedDetails = [...document.querySelectorAll("details:not([open])")];
  window.__closedDetails.forEach((d) => { d.open = true; });
  const visible = (el) => el.checkVisibility() && !el.disabled;
  const actions = [...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, summary")].filter(visible);
  // A radio group is one stop: Tab reaches its checked button, the arrow
  // keys the others.
  const stops = new Map();
  for (const el of actions) {
    const key = el.type === "radio" ? "radio:" + el.name : "element:" + stops.size;
    if (!stops.has(key)) stops.set(key, String(stops.size));
    el.setAttribute("data-keyboard", stops.get(key));
  }
  window.__reached = new Set();
  document.addEventListener("focusin", (e) => {
    if (e.target.hasAttribute && e.target.hasAttribute("data-keyboard")) window.__reached.add(e.target.getAttribute("data-keyboard"));
  });
  if (document.activeElement) document.activeElement.blur();
  return stops.size;
})()`))
	if total == 0 {
		p.t.Errorf("%s: no actions at all", p.location())
		return
	}
	for i := 0; i < 2*total+4; i++ {
		p.do("pressing Tab", chromedp.KeyEvent("\t"))
		if reached := within(p, "counting", chromedp.Evaluate[int](`window.__reached.size`)); reached == total {
			p.do("restoring the page", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur();
window.__closedDetails.forEach((d) => { d.open = false; })`))
			return
		}
	}
	missed := p.eval("listing unreached actions", `[...document.querySelectorAll("[data-keyboard]")].filter((el) => !window.__reached.has(el.getAttribute("data-keyboard"))).map((el) => el.outerHTML.slice(0, 80)).join("\n")`)
	p.t.Errorf("%s: not reachable with the Tab key:\n%s", p.location(), missed)
}

// cookie returns the browser's cookie of the portal named name.
func (p *person) cookie(name string) *network.Cookie {
	p.t.Helper()
	res, err := chromedp.Call(p.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{p.portal.url}})
	if err != nil {
		p.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// headerOf returns a response header (the protocol's names keep their case).
func headerOf(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

func ptrTo[T any](v T) *T { return &v }
