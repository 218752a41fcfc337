// Package browser drives the web UI in headless Chromium (Debian's chromium package, through chromedp)
// against the whole suite and the Google sandbox. One browser serves the package; every test gets
// its own browser context (cookies, storage) and fails on any JavaScript console error, uncaught
// exception or failed request it did not announce. Each page is written as a screenshot to
// $ALGA_TEST_ARTIFACTS (default: the test's temporary directory).
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var (
	browserCtx    context.Context
	browserCancel context.CancelFunc
	browserErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if browserCancel != nil {
		browserCancel()
	}
	os.Exit(code)
}

func chromiumPath() string {
	for _, p := range []string{os.Getenv("ALGA_CHROMIUM"), "/usr/lib/chromium/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

var startOnce sync.Once

// startBrowser starts the package's one Chromium (fresh profile directory, no background networking).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	startOnce.Do(func() {
		path := chromiumPath()
		if path == "" {
			browserErr = fmt.Errorf("chromium not found (apt-get install -y chromium)")
			return
		}
		dir, err := os.MkdirTemp("", "alga-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir), chromedp.WindowSize(1280, 1000),
			chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-default-apps", true),
			// The production sign-in test serves https with a certificate made for it.
			chromedp.IgnoreCertErrors,
		}
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		if err := chromedp.Do(ctx); err != nil {
			cancelCtx()
			cancelAlloc()
			browserErr = err
			return
		}
		browserCtx = ctx
		browserCancel = func() { cancelCtx(); cancelAlloc(); _ = os.RemoveAll(dir) }
	})
	if browserErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser: %v", browserErr)
		}
		t.Skipf("browser: %v", browserErr)
	}
	return browserCtx
}

// allowance is a failed request a test step expects (e.g. the 400 of a save with a bad field).
type allowance struct {
	url    string // substring of the URL
	status int    // 0: a load failure
	hits   int
}

// monitor collects what must fail a test: console errors, exceptions, failed requests.
type monitor struct {
	mu       sync.Mutex
	problems []string
	allowed  []*allowance
	requests map[network.RequestID]string
}

func (m *monitor) allow(url string, status int) *allowance {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := &allowance{url: url, status: status}
	m.allowed = append(m.allowed, a)
	return a
}

func (m *monitor) allowedLocked(url string, status int) bool {
	for _, a := range m.allowed {
		if strings.Contains(url, a.url) && (a.status == status || status == -1) {
			if status != -1 {
				a.hits++
			}
			return true
		}
	}
	return false
}

var statusInLog = regexp.MustCompile(`status of (\d{3})`)

func (m *monitor) handle(ev any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		m.problems = append(m.problems, "uncaught exception: "+exceptionText(e.ExceptionDetails))
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			m.problems = append(m.problems, "console.error: "+strings.Join(parts, " "))
		}
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError {
			return
		}
		if e.Entry.Source == log.EntrySourceNetwork {
			// "Failed to load resource: the server responded with a status of 400": judged by the response.
			if sm := statusInLog.FindStringSubmatch(e.Entry.Text); sm != nil && m.allowedLocked(e.Entry.URL, -1) {
				return
			}
		}
		m.problems = append(m.problems, fmt.Sprintf("browser log error (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
	case *network.EventRequestWillBeSent:
		m.requests[e.RequestID] = e.Request.Method + " " + e.Request.URL
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 && !m.allowedLocked(e.Response.URL, int(e.Response.Status)) {
			m.problems = append(m.problems, fmt.Sprintf("HTTP %d for %s", e.Response.Status, e.Response.URL))
		}
	case *network.EventLoadingFailed:
		if e.Canceled {
			return // a navigation away cancels what the old page still loaded
		}
		url := m.requests[e.RequestID]
		if !m.allowedLocked(url, 0) {
			m.problems = append(m.problems, fmt.Sprintf("request failed (%s): %s", e.ErrorText, url))
		}
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return ""
	}
	s := d.Text
	if d.Exception != nil {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d)", s, d.URL, d.LineNumber)
}

// tab is one browser tab in a fresh browser context.
type tab struct {
	t    *testing.T
	ctx  context.Context
	mon  *monitor
	base string
	dir  string
}

func artifactsDir(t *testing.T) string {
	if d := os.Getenv("ALGA_TEST_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, "ui-screenshots")
		if err := os.MkdirAll(dir, 0o755); err == nil {
			return dir
		}
	}
	return t.TempDir()
}

func newTab(t *testing.T, base string) *tab {
	t.Helper()
	root := startBrowser(t)
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	b := &tab{t: t, ctx: ctx, base: base, mon: &monitor{requests: map[network.RequestID]string{}}, dir: artifactsDir(t)}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	if err := chromedp.Listen(ctx, b.mon.handle); err != nil {
		t.Fatalf("listening: %v", err)
	}
	t.Cleanup(func() {
		b.checkClean()
		cancelTimeout()
		cancel()
	})
	return b
}

// grantClipboard lets the page read the clipboard back (copy buttons).
func (b *tab) grantClipboard() {
	b.t.Helper()
	c := chromedp.FromContext(b.ctx)
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted, Origin: b.base, BrowserContextID: c.BrowserContextID,
		})
		if err != nil {
			b.t.Fatalf("granting %s: %v", name, err)
		}
	}
}

// checkClean fails the test on every console error, exception or failed request not announced.
func (b *tab) checkClean() {
	b.t.Helper()
	b.mon.mu.Lock()
	defer b.mon.mu.Unlock()
	for _, p := range b.mon.problems {
		b.t.Errorf("browser: %s", p)
	}
	b.mon.problems = nil
}

// expectFailure announces a failed response the next steps cause on purpose.
func (b *tab) expectFailure(urlPart string, status int) *allowance {
	return b.mon.allow(urlPart, status)
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.shot("failure")
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	l, _ := chromedp.Run(ctx, chromedp.Location())
	return l
}

func (b *tab) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

func (b *tab) text(sel string) string {
	b.t.Helper()
	// Read through the page (not a cached DOM node): the page may have just navigated by itself.
	b.waitFor(sel, fmt.Sprintf(`document.querySelector(%q)`, sel))
	return evalIn[string](b, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel))
}

func evalIn[T any](b *tab, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %q: %v", js, err)
	}
	return v
}

// waitFor waits (across navigations) until the JavaScript predicate is true.
func (b *tab) waitFor(what, predicate string) {
	b.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("(function(){try{return !!("+predicate+")}catch(e){return false}})()"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("failure")
			b.t.Fatalf("waiting for %s: timed out (at %s)", what, b.location())
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitText waits until the element's text contains want.
func (b *tab) waitText(sel, want string) {
	b.t.Helper()
	b.waitFor(sel+" containing "+want, fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).textContent.includes(%q)`, sel, sel, want))
}

func (b *tab) present(sel string) bool {
	b.t.Helper()
	return evalIn[bool](b, fmt.Sprintf(`document.querySelector(%q) !== null`, sel))
}

// shot writes a full-page screenshot as an artifact.
func (b *tab) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(b.dir, strings.ReplaceAll(b.t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", file)
}

// narrow takes the page's screenshot at 360 px and checks nothing overflows horizontally.
func (b *tab) narrow(name string) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(360, 800))
	b.do(chromedp.Reload())
	w := evalIn[int](b, `document.documentElement.scrollWidth`)
	if w > 362 {
		wide := evalIn[[]string](b, `Array.from(document.querySelectorAll("body *")).filter(e => e.getBoundingClientRect().right > 362 && (!e.closest(".scroll") || e.classList.contains("scroll") || e.querySelector(".scroll")))
			.slice(0, 5).map(e => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`)
		b.t.Errorf("%s: the page is %d px wide at a 360 px viewport: %v", name, w, wide)
	}
	b.shot(name + "-360px")
	b.do(chromedp.EmulateViewport(1280, 1000))
}

// checkLabels fails on a visible form control without a label (keyboard and screen-reader use).
func (b *tab) checkLabels(page string) {
	b.t.Helper()
	unlabelled := evalIn[[]string](b, `Array.from(document.querySelectorAll('input:not([type=hidden]),textarea,select'))
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
		.map(e => e.id || e.name || e.outerHTML)`)
	if len(unlabelled) > 0 {
		b.t.Errorf("%s: form controls without a label: %v", page, unlabelled)
	}
}
