package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/web/browsertest"
)

// eventLog reads the keypad's event stream as a page does and keeps every
// string the events carry, for a test to search.
type eventLog struct {
	mu      sync.Mutex
	strs    []string
	frames  int
	stopped chan struct{}
}

// recordEvents reads url's event stream until the test ends.
func recordEvents(t *testing.T, url string) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	l := &eventLog{stopped: make(chan struct{})}
	go l.read(resp)
	t.Cleanup(func() {
		cancel()
		<-l.stopped
	})
	return l
}

func (l *eventLog) read(resp *http.Response) {
	defer close(l.stopped)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var v any
		if json.Unmarshal([]byte(data), &v) != nil {
			continue
		}
		l.mu.Lock()
		l.frames++
		l.strs = appendStrings(l.strs, v)
		l.mu.Unlock()
	}
}

// appendStrings appends every string in a decoded JSON value.
func appendStrings(out []string, v any) []string {
	switch v := v.(type) {
	case string:
		return append(out, v)
	case []any:
		for _, e := range v {
			out = appendStrings(out, e)
		}
	case map[string]any:
		for _, e := range v {
			out = appendStrings(out, e)
		}
	}
	return out
}

// holding returns the strings that contain s.
func (l *eventLog) holding(s string) (found []string, frames int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, str := range l.strs {
		if strings.Contains(str, s) {
			found = append(found, str)
		}
	}
	return found, l.frames
}

// pageText is what a page shows or holds for a script or a screen reader:
// its text, and the attributes that carry words rather than geometry or
// clock times.
const pageText = `document.body.textContent + [...document.querySelectorAll('*')].flatMap(e =>
	[...e.attributes].filter(a => a.name !== 'data-deadline' && (a.name.startsWith('data-') ||
		a.name.startsWith('aria-') || a.name === 'title' || a.name === 'value'))
	.map(a => a.value)).join(' ')`

// callItem selects the calls list's entry of call id.
func callItem(id, part string) string {
	return fmt.Sprintf(`#calls .call-item[data-id=%s] %s`, js(id), part)
}

func TestBankKeypadInBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	bank, err := ivrspec.LoadExample("bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := startStack(t, "", bank)

	t.Run("a PIN is masked and a wrong key counted", func(t *testing.T) {
		const pin = "7373"
		events := recordEvents(t, st.url)
		p := openPage(t, browser, st.url)
		id := p.newCall()
		p.click(`button[aria-label="key 1"]`)
		p.waitCurrent("account_number")
		p.key("12345678#")
		p.waitCurrent("pin")

		p.key(pin[:3])
		p.waitJS("three masked digits", `document.getElementById('call-digits').textContent === '***'`)
		if got := p.text(callItem(id, ".digits")); got != "digits ***" {
			t.Errorf("calls list shows %q for the call, want its masked digits", got)
		}
		keys := eval[[]string](p, `[...document.querySelectorAll('#call-keys .key-chip')]
			.filter(c => c.title.endsWith(' at pin')).map(c => c.firstChild.textContent)`)
		if strings.Join(keys, "") != "***" {
			t.Errorf("keys pressed at the PIN show as %q, want ***", keys)
		}
		p.key(pin[3:])
		p.waitCurrent("balance_menu")

		p.key("7")
		p.waitJS("a no-match counted", `document.getElementById('call-counters').textContent === '0 / 1'`)
		if got := p.text(callItem(id, ".counters")); got != "no input 0, no match 1" {
			t.Errorf("calls list shows counters %q, want no match 1", got)
		}
		p.screenshot("pin-masked.png")

		shown := strings.ReplaceAll(eval[string](p, pageText), id, "")
		if strings.Contains(shown, pin) {
			t.Errorf("the page holds the PIN %s:\n%s", pin, shown)
		}
		if found, frames := events.holding(pin); len(found) > 0 || frames < 5 {
			t.Errorf("the event stream's %d events hold the PIN in %q", frames, found)
		}
	})

	t.Run("keyboard N, star and pound", func(t *testing.T) {
		p := openPage(t, browser, st.url)
		before := p.text("#call-id")
		p.key("n")
		p.waitJS("a new call from N", fmt.Sprintf(`(id => id.startsWith('web-') && id !== %s)(
			document.getElementById('call-id').textContent)`, js(before)))

		p.key("1")
		p.waitCurrent("account_number")
		p.key("*")
		p.waitCurrent("main_menu")
		p.key("1")
		p.waitCurrent("account_number")
		p.key("12345678#")
		p.waitCurrent("pin")
		chips := eval[[]string](p, `[...document.querySelectorAll('#call-keys .key-chip')]
			.map(c => c.firstChild.textContent + ' ' + c.title)`)
		if n := len(chips); n == 0 || chips[n-1] != "# accepted at account_number" {
			t.Errorf("keys pressed %q, want # last, ending the account number", chips)
		}
		p.screenshot("keyboard.png")
	})
}
