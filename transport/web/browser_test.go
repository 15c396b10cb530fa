package web

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/simulator"
	"github.com/dtmfd/dtmfd/transport/web/browsertest"
)

var updateDocs = flag.Bool("update-docs", false,
	"write docs/keypad.png from the completed call's screenshot")

// The test flow's no-input timeout: long enough for a browser to press
// three keys in a row, short enough to watch a timeout.
const flowTimeout = 3 * time.Second

// recordingSink accepts every write and remembers it by interaction.
type recordingSink struct {
	mu     sync.Mutex
	writes map[string][]ivrspec.Variable
}

func (s *recordingSink) Write(_ context.Context, id string, vars []ivrspec.Variable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes[id] = append(s.writes[id], vars...)
	return nil
}

func (s *recordingSink) Retry(error, int) actors.Verdict { return actors.Verdict{} }

func (s *recordingSink) value(id, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.writes[id] {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

// stack is dtmfd's engine with the simulator and the keypad in front of
// it, on a loopback server.
type stack struct {
	url  string
	hub  *Hub
	sink *recordingSink
}

// startStack starts the stack on flow, the example tree when nil; with a
// token, the keypad and the simulator both need it.
func startStack(t *testing.T, token string, flow *ivrspec.Flow) *stack {
	t.Helper()
	if flow == nil {
		flow = ivrspec.Example(flowTimeout)
	}
	hub := New(Options{Flow: func() *ivrspec.Flow { return flow }, Token: token})
	sink := &recordingSink{writes: make(map[string][]ivrspec.Variable)}
	eng, err := actors.Start(actors.Config{
		Flow:    func() *ivrspec.Flow { return flow },
		Sink:    sink,
		OnCall:  hub.OnCall,
		OnWrite: hub.OnWrite,
	})
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	ingest := func(id string, key byte, at time.Time) error {
		eng.Digit(&actors.Digit{CallID: id, Key: key, Received: at})
		return nil
	}
	mux.Handle("/simulator", &simulator.Handler{Token: token, Ingest: ingest})
	mux.Handle("/", hub.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
		eng.Close()
	})
	return &stack{url: srv.URL, hub: hub, sink: sink}
}

// page is one browser tab on the keypad.
type page struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	exceptions []string
}

// openPage opens the keypad in a new tab, optionally at a phone's size,
// and waits for its event stream to be live.
func openPage(t *testing.T, browser context.Context, url string,
	setup ...chromedp.Action[chromedp.Void]) *page {
	t.Helper()
	tab, closeTab := chromedp.NewContext(browser)
	t.Cleanup(closeTab)
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	t.Cleanup(cancel)

	p := &page{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.mu.Lock()
				p.exceptions = append(p.exceptions, m.String())
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(p.checkConsole)

	p.do(append(setup, chromedp.Navigate(url))...)
	p.waitJS("the event stream is live", `document.getElementById('conn').dataset.state === 'live'`)
	p.waitJS("the flow is drawn", `!!document.querySelector('#diagram svg .node')`)
	return p
}

func (p *page) checkConsole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.exceptions {
		p.t.Errorf("page reported an error: %s", e)
	}
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(sel)))
}

func (p *page) key(k string) {
	p.t.Helper()
	p.do(chromedp.KeyEvent(k))
}

func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is true in the page, and on failure says what
// the call panel showed.
func (p *page) waitJS(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	poll := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
	_, err := chromedp.Run(ctx, poll)
	if err != nil {
		panel, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](
			`document.querySelector('.call').innerText.replace(/\s+/g, ' ')`))
		p.t.Fatalf("waiting for %s: %v\ncall panel: %s", what, err, panel)
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(
		`(document.querySelector(%s)?.textContent ?? '').trim()`, js(sel)))
}

// waitCurrent waits until the diagram marks node as the selected call's.
func (p *page) waitCurrent(node string) {
	p.t.Helper()
	p.waitJS("current node "+node, fmt.Sprintf(
		`document.querySelector('#diagram .node[data-current="true"]')?.dataset.id === %s`, js(node)))
}

// waitVar waits until the call panel's decision shows name = value.
func (p *page) waitVar(name, value string) {
	p.t.Helper()
	p.waitJS(name+" = "+value, fmt.Sprintf(
		`document.querySelector('#call-vars tr[data-name=%s] td')?.textContent === %s`,
		js(name), js(value)))
}

// waitWrite waits until the feed shows a delivered write for id holding
// want.
func (p *page) waitWrite(id, want string) {
	p.t.Helper()
	p.waitJS("the write of "+id, fmt.Sprintf(
		`[...document.querySelectorAll('#writes li')].some(li => li.dataset.interaction === %s &&
			li.dataset.ok === 'true' && li.textContent.includes(%s))`, js(id), js(want)))
}

// newCall clicks New call and returns the id the page gave the call.
func (p *page) newCall() string {
	p.t.Helper()
	before := p.text("#call-id")
	p.click("#new-call")
	p.waitJS("a new call", fmt.Sprintf(
		`document.getElementById('call-id').textContent.startsWith('web-') &&
			document.getElementById('call-id').textContent !== %s`, js(before)))
	return p.text("#call-id")
}

// screenshot saves the page as the test's artifact name, which go test
// keeps under -outputdir when run with -artifacts.
func (p *page) screenshot(name string) []byte {
	p.t.Helper()
	p.waitJS("keys to settle", `!document.querySelector('.key.pressed')`)
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(p.t.ArtifactDir(), name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return png
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// js quotes s as a JavaScript string.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestKeypadInBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	st := startStack(t, "", nil)

	t.Run("clicks and keys complete a call", func(t *testing.T) {
		p := openPage(t, browser, st.url)
		id := p.newCall()
		p.waitCurrent("main_menu")

		p.click(`button[aria-label="key 2"]`)
		p.waitCurrent("department")
		p.key("a")
		p.waitCurrent("confirm")
		p.key("1")
		p.waitCurrent("completed")

		p.waitVar("ivr_selection", `["2","A","1"]`)
		p.waitVar("ivr_status", "completed")
		p.waitWrite(id, `ivr_selection=["2","A","1"]`)
		latency := eval[string](p, fmt.Sprintf(`[...document.querySelectorAll('#writes li')]
			.find(li => li.dataset.interaction === %s).querySelector('.lat .ms').textContent`, js(id)))
		if !regexp.MustCompile(`^\d+\.\d ms$`).MatchString(latency) {
			t.Errorf("the feed's latency shows %q, want a number of milliseconds", latency)
		}
		if got := st.sink.value(id, "ivr_selection"); got != `["2","A","1"]` {
			t.Errorf("the platform got ivr_selection %q, want [\"2\",\"A\",\"1\"]", got)
		}

		taken := eval[[]string](p,
			`[...document.querySelectorAll('#diagram .edges .edge.taken')].map(e => e.edge.label)`)
		if want := []string{"1, 2, 3", "A, B", "1"}; !slices.Equal(sorted(taken), sorted(want)) {
			t.Errorf("diagram marks edges %q as taken, want %q", taken, want)
		}
		if tag := p.text(`#diagram .node[data-current="true"] .here-tag`); tag != "ENDED" {
			t.Errorf("current node is tagged %q, want ENDED: colour must not be the only mark", tag)
		}
		width := eval[string](p,
			`getComputedStyle(document.querySelector('#diagram .node.current .shape')).strokeWidth`)
		if w, _ := strconv.ParseFloat(strings.TrimSuffix(width, "px"), 64); w < 4 {
			t.Errorf("current node outline is %s wide, want a thick one", width)
		}

		png := p.screenshot("completed.png")
		if *updateDocs {
			doc := filepath.Join(repoRoot(t), "docs", "keypad.png")
			if err := os.MkdirAll(filepath.Dir(doc), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(doc, png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("a silent call counts down and times out", func(t *testing.T) {
		p := openPage(t, browser, st.url)
		first := p.newCall()
		p.click(`button[aria-label="key 3"]`)
		p.waitCurrent("department")

		id := p.newCall()
		p.key("1")
		p.waitCurrent("department")

		countdown := regexp.MustCompile(`^no input (\d+\.\d) s$`)
		read := func() float64 {
			m := countdown.FindStringSubmatch(p.text("#call-timer"))
			if m == nil {
				return -1
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
		timer := `document.getElementById('call-timer').textContent`
		p.waitJS("a running countdown", `/^no input ([1-9]\.\d|0\.[1-9]) s$/.test(`+timer+`)`)
		start := read()
		if start <= 0 || start > flowTimeout.Seconds() {
			t.Fatalf("countdown shows %v s, want between 0 and %v", start, flowTimeout.Seconds())
		}
		p.waitJS("the countdown to move", fmt.Sprintf(
			`(m => m && parseFloat(m[1]) < %v)(%s.match(/(\d+\.\d) s/))`, start, timer))
		p.waitJS("the countdown to reach 0", timer+`.includes('0.0 s')`)

		p.waitCurrent("timed_out")
		p.waitVar("ivr_status", "timeout_fallback")
		p.waitWrite(id, "ivr_status=timeout_fallback")
		p.waitWrite(first, "ivr_status=timeout_fallback")

		calls := eval[[]string](p,
			`[...document.querySelectorAll('#calls .call-item')].map(b => b.dataset.id)`)
		if !slices.Contains(calls, first) || !slices.Contains(calls, id) {
			t.Errorf("calls list holds %q, want both %s and %s", calls, first, id)
		}
		p.screenshot("timeout.png")
	})

	t.Run("keypad works at a phone's width", func(t *testing.T) {
		p := openPage(t, browser, st.url, chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile))
		type rect struct{ Left, Top, Right, Bottom float64 }
		keys := eval[[]rect](p, `[...document.querySelectorAll('#keypad .key')].map(b => {
			const r = b.getBoundingClientRect();
			return {Left: r.left, Top: r.top, Right: r.right, Bottom: r.bottom};
		})`)
		if len(keys) != 16 {
			t.Fatalf("keypad has %d keys, want 16", len(keys))
		}
		for i, r := range keys {
			if r.Left < 0 || r.Right > 375 || r.Top < 0 || r.Bottom > 740 {
				t.Errorf("key %d at %+v is outside the 375x740 screen", i, r)
			}
		}
		if w := eval[int](p, `document.documentElement.scrollWidth`); w > 375 {
			t.Errorf("page is %dpx wide at 375px: only the diagram may scroll sideways", w)
		}

		p.newCall()
		p.click(`button[aria-label="key 3"]`)
		p.waitCurrent("department")
		p.screenshot("phone.png")
	})

	t.Run("buttons are named and changes are announced", func(t *testing.T) {
		p := openPage(t, browser, st.url)
		p.newCall()
		p.click(`button[aria-label="key 2"]`)
		p.waitCurrent("department")
		p.waitJS("an announcement",
			`document.getElementById('announcer').textContent.includes('department')`)

		tree, err := chromedp.Call(p.ctx, accessibility.GetFullAXTree,
			accessibility.GetFullAXTreeParams{})
		if err != nil {
			t.Fatal(err)
		}
		buttons := 0
		for _, n := range tree.Nodes {
			if n.Ignored || n.Role == nil || strings.Trim(string(n.Role.Value), `"`) != "button" {
				continue
			}
			buttons++
			if n.Name == nil || strings.Trim(string(n.Name.Value), `" `) == "" {
				t.Errorf("button (DOM node %d) has no accessible name", n.BackendDOMNodeID)
			}
		}
		if buttons < 18 {
			t.Errorf("found %d buttons, want the 16 keys, New call and the call", buttons)
		}

		live := eval[[]string](p, `[...document.querySelectorAll('[aria-live="polite"]')].map(e => e.id)`)
		for _, id := range []string{"announcer", "writes"} {
			if !slices.Contains(live, id) {
				t.Errorf("no polite live region #%s; live regions: %q", id, live)
			}
		}

		eval[chromedp.Void](p, `document.activeElement.blur()`)
		p.key("\t")
		outline := eval[string](p, `(e => e.matches(':focus-visible')
			? getComputedStyle(e).outlineStyle : 'no focus')(document.activeElement)`)
		if outline == "none" || outline == "no focus" {
			t.Errorf("a button focused from the keyboard shows outline %q, want a visible one", outline)
		}
		p.screenshot("accessibility.png")
	})

	t.Run("a call from another source joins the list", func(t *testing.T) {
		p := openPage(t, browser, st.url)
		resp, err := http.Post(st.url+"/simulator", "application/json",
			strings.NewReader(`{"callId":"curl-1","digits":"2"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /simulator: %s", resp.Status)
		}
		p.waitJS("curl-1 in the calls list", `document.querySelector(
			'#calls .call-item[data-id="curl-1"] .where')?.textContent === 'at department'`)
	})

	t.Run("a token in the address opens the page and presses keys", func(t *testing.T) {
		const token = "t0k&n+/="
		secured := startStack(t, token, nil)
		p := openPage(t, browser, secured.url+"/?token="+url.QueryEscape(token))
		p.newCall()
		p.click(`button[aria-label="key 1"]`)
		p.waitCurrent("department")
		if got := p.text("#pad-error"); got != "" {
			t.Errorf("page shows %q after a key", got)
		}
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
