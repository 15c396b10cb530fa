package cxone_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// snippet is the Studio script of the README, as far as a test can play
// it: the fields of the request body, in order, with the script variable
// each is filled from, and the reply fields the script keeps.
type snippet struct {
	fields [][2]string // body field, script variable
	keeps  [][2]string // script variable, reply path
}

var (
	reqField  = regexp.MustCompile(`^dtmfdReq\.(\w+) = "\{(\w+)\}"$`)
	keepField = regexp.MustCompile(`^ASSIGN (\w+) = "\{dtmfdResult\.([\w.]+)\}"$`)
)

// readSnippet reads the snippets of the README's Studio script outline.
func readSnippet(t *testing.T) snippet {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	block := func(after string) []string {
		i := strings.Index(readme, after)
		if i < 0 {
			t.Fatalf("README has no %q", after)
		}
		rest := readme[i:]
		start := strings.Index(rest, "```\n") + len("```\n")
		end := start + strings.Index(rest[start:], "```")
		var lines []string
		for l := range strings.Lines(rest[start:end]) {
			lines = append(lines, strings.TrimSpace(l))
		}
		return lines
	}

	var s snippet
	build := block("`SNIPPET` builds the request:")
	if !slices.Contains(build, "ASSIGN dtmfdTurn = dtmfdTurn + 1") {
		t.Fatalf("request snippet %q does not count its turns", build)
	}
	for _, l := range build {
		if m := reqField.FindStringSubmatch(l); m != nil {
			s.fields = append(s.fields, [2]string{m[1], m[2]})
		}
	}
	for _, l := range block("`SNIPPET` reads the reply:") {
		if m := keepField.FindStringSubmatch(l); m != nil {
			s.keeps = append(s.keeps, [2]string{m[1], m[2]})
		}
	}
	if !strings.Contains(readme, "`dtmfdEvent = \"timeout\"` and `dtmfdDigits = \"\"`") {
		t.Fatal("README does not clear dtmfdDigits on the timeout path")
	}
	return s
}

// body builds the request as the snippet's asjson() does: every value a
// string, the fields in the snippet's order.
func (s snippet) body(vars map[string]string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range s.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f[0])
		v, _ := json.Marshal(vars[f[1]])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// keep copies the reply fields the script keeps into its variables.
func (s snippet) keep(reply map[string]any, vars map[string]string) {
	for _, k := range s.keeps {
		var v any = reply
		for part := range strings.SplitSeq(k[1], ".") {
			m, _ := v.(map[string]any)
			v = m[part]
		}
		switch x := v.(type) {
		case string:
			vars[k[0]] = x
		case float64:
			vars[k[0]] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			vars[k[0]] = ""
		}
	}
}

// The README's Studio snippet, played as the script outline says, gets
// every turn answered and the call decided; its own resend of a turn is
// answered again and not applied twice.
func TestREADMEStudioSnippet(t *testing.T) {
	t.Parallel()
	sn := readSnippet(t)
	s := newStack(t, bank(t), []string{"ivr_status", "account"}, nil)
	ctx := testContext(t)

	post := func(body []byte) map[string]any {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.studio.URL,
			bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", s.studio.Auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("body %s: %d %s", body, resp.StatusCode, b)
		}
		var rep map[string]any
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}

	// What Capture returns at each collect; "" is a timeout.
	captures := []capture{
		{"", false, "main_menu"},
		{"1", false, "account_number"},
		{"12345678", true, "pin"},
		{"4321", false, "balance_menu"},
		{"1", false, ""},
	}
	vars := map[string]string{"ContactID": "4600700", "dtmfdEvent": "start", "dtmfdTurn": "0"}
	for i := 0; ; i++ {
		turn, _ := strconv.Atoi(vars["dtmfdTurn"])
		vars["dtmfdTurn"] = strconv.Itoa(turn + 1)
		body := sn.body(vars)
		rep := post(body)
		if i > 0 && captures[i-1].resend {
			if again := post(body); !equalAny(again, rep) {
				t.Fatalf("resent turn %d: %v, want the first reply %v", i, again, rep)
			}
		}
		sn.keep(rep, vars)

		if i == len(captures) {
			if vars["dtmfdAction"] != "end" || vars["dtmfdStatus"] != "decided" {
				t.Fatalf("last reply %v, want the decision", rep)
			}
			break
		}
		c := captures[i]
		if vars["dtmfdAction"] != "collect" || rep["node"] != nodeBefore(captures, i) {
			t.Fatalf("turn %d (%s): reply %v", i+1, body, rep)
		}
		vars["dtmfdEvent"], vars["dtmfdDigits"] = "digits", c.digits
		if c.digits == "" {
			vars["dtmfdEvent"], vars["dtmfdDigits"] = "timeout", ""
		}
	}

	s.drain(t)
	want := [][]string{{"balance_checking", "12345678"}}
	if got := s.signals("4600700"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("signals = %q, want %q", got, want)
	}
}

// capture is what a Studio Capture action returns at one collect, and
// the node the call goes to after it.
type capture struct {
	digits string
	resend bool // the REST API action sends this turn's request twice
	node   string
}

// nodeBefore is the node the call waits at when capture i starts: the
// start node, or where capture i-1 led.
func nodeBefore(captures []capture, i int) string {
	if i == 0 {
		return "main_menu"
	}
	return captures[i-1].node
}
