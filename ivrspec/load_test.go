package ivrspec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// contractModel is the model examples/contract.yaml must load into.
func contractModel(name string) *Flow {
	completed := &Node{ID: "completed", Kind: KindEnd, BargeIn: true, Variables: []Template{
		mustTemplate("ivr_selection", "${path}"),
		mustTemplate("ivr_status", "completed"),
	}}
	timedOut := &Node{ID: "timed_out", Kind: KindEnd, BargeIn: true, Variables: []Template{
		mustTemplate("ivr_status", "timeout_fallback"),
	}}
	menu := func(id string, branches map[byte]*Node) *Node {
		return &Node{
			ID:         id,
			Kind:       KindMenu,
			BargeIn:    true,
			Branches:   branches,
			Timeout:    10 * time.Second,
			InterDigit: 10 * time.Second,
			NoInput:    Policy{Fallback: timedOut},
			NoMatch:    Policy{Ignore: true},
		}
	}
	confirm := menu("confirm", map[byte]*Node{'1': completed})
	department := menu("department", map[byte]*Node{'A': confirm, 'B': confirm})
	mainMenu := menu("main_menu", map[byte]*Node{'1': department, '2': department, '3': department})

	f := &Flow{
		Name:  name,
		Start: mainMenu,
		Order: []string{"main_menu", "department", "confirm", "completed", "timed_out"},
		Nodes: make(map[string]*Node),
	}
	for _, n := range []*Node{mainMenu, department, confirm, completed, timedOut} {
		f.Nodes[n.ID] = n
	}
	return f
}

func mustTemplate(name, s string) Template {
	t, err := parseTemplate(name, s)
	if err != nil {
		panic(err)
	}
	return t
}

// dump renders a flow as text, naming nodes by id, so a test failure
// shows what differs.
func dump(f *Flow) string {
	id := func(n *Node) string {
		if n == nil {
			return "<nil>"
		}
		return n.ID
	}
	policy := func(p Policy) string {
		s := fmt.Sprintf("ignore=%v fallback=%s steps=[", p.Ignore, id(p.Fallback))
		for _, st := range p.Steps {
			s += fmt.Sprintf("{%q %s}", st.Prompt, id(st.Goto))
		}
		return s + "]"
	}

	var b strings.Builder
	fmt.Fprintf(&b, "name=%s start=%s order=%v\n", f.Name, id(f.Start), f.Order)
	for _, nid := range f.Order {
		n := f.Nodes[nid]
		fmt.Fprintf(&b, "%s %s prompt=%q/%v bargeIn=%v timeout=%v/%v\n",
			n.ID, n.Kind, n.Prompt, n.PromptDuration, n.BargeIn, n.Timeout, n.InterDigit)
		for i := 0; i < len(Keys); i++ {
			if t, ok := n.Branches[Keys[i]]; ok {
				fmt.Fprintf(&b, "  branch %c -> %s\n", Keys[i], id(t))
			}
		}
		for i := 0; i < len(Keys); i++ {
			if g, ok := n.Global[Keys[i]]; ok {
				fmt.Fprintf(&b, "  global %c -> %s back=%v preempt=%v\n",
					Keys[i], id(g.Goto), g.Back, g.Preempt)
			}
		}
		if c := n.Collect; c != nil {
			fmt.Fprintf(&b, "  collect %d-%d keys=%q term=%q keep=%v tt=%v pattern=%v "+
				"sensitive=%v next=%s\n", c.MinDigits, c.MaxDigits, c.Keys, c.Terminators, c.KeepTerminator,
				c.TermTimeout, c.Pattern, c.Sensitive, id(c.Next))
		}
		fmt.Fprintf(&b, "  noInput %s\n  noMatch %s\n", policy(n.NoInput), policy(n.NoMatch))
		for _, v := range n.Variables {
			fmt.Fprintf(&b, "  var %s %+v\n", v.Name, v.parts)
		}
	}
	return b.String()
}

func TestLoadContract(t *testing.T) {
	t.Parallel()

	f, err := LoadFile("examples/contract.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}

	want := contractModel("examples/contract.yaml")
	if !reflect.DeepEqual(f, want) {
		t.Errorf("contract.yaml loaded as\n%s\nwant\n%s", dump(f), dump(want))
	}
}

// TestLoadJSON checks that JSON, being YAML, loads into the same model.
func TestLoadJSON(t *testing.T) {
	t.Parallel()

	f, err := LoadFile("testdata/contract.json", Options{})
	if err != nil {
		t.Fatal(err)
	}

	want := contractModel("testdata/contract.json")
	if !reflect.DeepEqual(f, want) {
		t.Errorf("contract.json loaded as\n%s\nwant\n%s", dump(f), dump(want))
	}
}

func TestLoadExamples(t *testing.T) {
	t.Parallel()

	paths, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(paths) < 3 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			t.Parallel()
			if _, err := LoadFile(p, Options{}); err != nil {
				t.Errorf("example does not load:\n%v", err)
			}
			if _, err := LoadExample(filepath.Base(p), Options{}); err != nil {
				t.Errorf("built-in example does not load:\n%v", err)
			}
		})
	}
}

// TestLoadBank checks what a caller of the bank example relies on.
func TestLoadBank(t *testing.T) {
	t.Parallel()

	f, err := LoadFile("examples/bank.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	acct, pin, operator := f.Nodes["account_number"], f.Nodes["pin"], f.Nodes["operator"]

	c := acct.Collect
	if c.MinDigits != 8 || c.MaxDigits != 12 || c.Terminators != "#" || acct.InterDigit != 3*time.Second {
		t.Errorf("account_number: %+v interDigit %v", c, acct.InterDigit)
	}
	if p := acct.NoInput; len(p.Steps) != 2 || p.Fallback != operator {
		t.Errorf("account_number noInput: %s", dump(f))
	}
	if !pin.Collect.Sensitive || pin.Collect.MinDigits != 4 || pin.Collect.MaxDigits != 4 {
		t.Errorf("pin: %+v", pin.Collect)
	}
	for v, want := range map[string]bool{"1234": true, "0000": true, "123": false, "12345": false} {
		if got := pin.Collect.Pattern.MatchString(v); got != want {
			t.Errorf("pin pattern on %q: %v, want %v", v, got, want)
		}
	}
	if g := pin.Global['0']; g.Goto != operator || g.Preempt {
		t.Errorf("pin global 0: %+v", g)
	}
	if g := pin.Global['*']; !g.Back {
		t.Errorf("pin global *: %+v", g)
	}
}

// TestLoadSupport checks the support example's overrides.
func TestLoadSupport(t *testing.T) {
	t.Parallel()

	f, err := LoadFile("examples/support.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	welcome, billing := f.Nodes["welcome"], f.Nodes["billing"]

	if welcome.BargeIn || welcome.PromptDuration != 7*time.Second {
		t.Errorf("welcome: bargeIn %v promptDuration %v", welcome.BargeIn, welcome.PromptDuration)
	}
	if g := billing.Global['0']; g.Goto != f.Nodes["billing_agent"] {
		t.Errorf("billing global 0 goes to %+v, want billing_agent", g.Goto)
	}
	if g := f.Nodes["main_menu"].Global['0']; g.Goto != f.Nodes["agent"] {
		t.Errorf("main_menu global 0 goes to %+v, want agent", g.Goto)
	}
	p := f.Nodes["internet"].NoMatch
	prompts := []string{p.Steps[0].Prompt, p.Steps[1].Prompt}
	want := []string{"sorry_not_an_option", "sorry_listen_carefully"}
	if !slices.Equal(prompts, want) || p.Fallback != f.Nodes["agent"] {
		t.Errorf("internet noMatch: prompts %v fallback %v", prompts, p.Fallback)
	}
}

// defaultsFlow has a node of each kind that sets nothing it may leave
// out, and one that sets everything.
const defaultsFlow = `
version: 1
start: menu
global:
  "0": {goto: done}
  "*": {back: true}
  "9": {goto: menu, preempt: true}
nodes:
  menu:
    type: menu
    branches: {1: bare}
  bare:
    type: collect
    next: full
  full:
    type: collect
    prompt: full_prompt
    promptDuration: 1500ms
    bargeIn: false
    timeout: 4s
    interDigitTimeout: 2s
    minDigits: 0
    maxDigits: 6
    keys: "123"
    terminators: ""
    keepTerminator: true
    termTimeout: 1s
    pattern: '1+'
    sensitive: true
    noInput: {steps: [{prompt: again}, {}], fallback: done}
    noMatch: {ignore: true}
    global:
      "0": off
      "#": {goto: menu}
    next: done
  done:
    type: end
    variables: {ivr_status: done}
`

func TestLoadDefaults(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		extra string
		opts  Options
		want  string
	}{
		{"bare", "", Options{}, `
menu menu prompt=""/0s bargeIn=true timeout=10s/10s
  branch 1 -> bare
  global 9 -> menu back=false preempt=true
  global * -> <nil> back=true preempt=false
  global 0 -> done back=false preempt=false
  noInput ignore=false fallback=<nil> steps=[]
  noMatch ignore=false fallback=<nil> steps=[]
bare collect prompt=""/0s bargeIn=true timeout=10s/10s
  global 9 -> menu back=false preempt=true
  global * -> <nil> back=true preempt=false
  global 0 -> done back=false preempt=false
  collect 1-1 keys="0123456789" term="#" keep=false tt=0s pattern=<nil> sensitive=false next=full
  noInput ignore=false fallback=<nil> steps=[]
  noMatch ignore=false fallback=<nil> steps=[]
full collect prompt="full_prompt"/1.5s bargeIn=false timeout=4s/2s
  global 9 -> menu back=false preempt=true
  global * -> <nil> back=true preempt=false
  global # -> menu back=false preempt=false
  collect 0-6 keys="123" term="" keep=true tt=1s pattern=^(?:1+)$ sensitive=true next=done
  noInput ignore=false fallback=done steps=[{"again" <nil>}{"" <nil>}]
  noMatch ignore=true fallback=<nil> steps=[]
done end prompt=""/0s bargeIn=true timeout=0s/0s
  noInput ignore=false fallback=<nil> steps=[]
  noMatch ignore=false fallback=<nil> steps=[]
  var ivr_status [{lit:done ref:0 arg:}]
`},
		{"options timeout", "", Options{DefaultTimeout: 3 * time.Second}, `
menu menu prompt=""/0s bargeIn=true timeout=3s/3s`},
		{"file timeout wins", "defaults: {timeout: 7s}", Options{DefaultTimeout: 3 * time.Second}, `
menu menu prompt=""/0s bargeIn=true timeout=7s/7s`},
		{"file inter-digit timeout", "defaults: {timeout: 7s, interDigitTimeout: 1s}", Options{}, `
menu menu prompt=""/0s bargeIn=true timeout=7s/1s`},
		{"default policies", "defaults: {noInput: {steps: [{prompt: hi}]}, noMatch: {fallback: done}}",
			Options{}, `
bare collect prompt=""/0s bargeIn=true timeout=10s/10s
  global 9 -> menu back=false preempt=true
  global * -> <nil> back=true preempt=false
  global 0 -> done back=false preempt=false
  collect 1-1 keys="0123456789" term="#" keep=false tt=0s pattern=<nil> sensitive=false next=full
  noInput ignore=false fallback=<nil> steps=[{"hi" <nil>}]
  noMatch ignore=false fallback=done steps=[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse("defaults.yaml", []byte(defaultsFlow+tt.extra), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := dump(f); !strings.Contains(got, strings.TrimPrefix(tt.want, "\n")) {
				t.Errorf("loaded as\n%s\nwant it to contain\n%s", got, tt.want)
			}
		})
	}
}

// TestLoadMinDigitsAlone checks that minDigits without maxDigits asks for
// exactly that many keys, and minDigits 0 for at most one.
func TestLoadMinDigitsAlone(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		min     string
		wantMin int
		wantMax int
	}{
		{"four", "4", 4, 4},
		{"zero", "0", 0, 1},
		{"one", "1", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "version: 1\nstart: c\nnodes:\n  c: {type: collect, minDigits: " + tt.min +
				", next: e}\n  e: {type: end, variables: {x: y}}\n"
			f, err := Parse("min.yaml", []byte(src), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if c := f.Nodes["c"].Collect; c.MinDigits != tt.wantMin || c.MaxDigits != tt.wantMax {
				t.Errorf("digits %d-%d, want %d-%d", c.MinDigits, c.MaxDigits, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()

	_, err := LoadFile("testdata/no-such-file.yaml", Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want one wrapping fs.ErrNotExist", err)
	}
}

// FuzzParse checks that no file makes Parse panic, that every problem has
// a position, and that a flow without problems is complete: a session
// can follow every pointer in it.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"examples", "testdata"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(defaultsFlow))

	f.Fuzz(func(t *testing.T, data []byte) {
		flow, err := Parse("fuzz.yaml", data, Options{})
		if err != nil {
			checkProblems(t, err)
			return
		}
		checkFlow(t, flow)
		_ = flow.Mermaid()
	})
}

func checkProblems(t *testing.T, err error) {
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) == 0 {
		t.Fatalf("error %T %v is not a LoadError with problems", err, err)
	}
	for _, p := range le.Problems {
		if p.Line < 1 || p.Column < 1 || p.Msg == "" || p.File != "fuzz.yaml" {
			t.Fatalf("problem without a position or message: %#v", p)
		}
	}
}

// checkFlow fails unless every pointer in f leads to one of its nodes and
// every node has what its kind needs.
func checkFlow(t *testing.T, f *Flow) {
	in := func(n *Node, nilOK bool) {
		t.Helper()
		if n == nil && nilOK {
			return
		}
		if n == nil || f.Nodes[n.ID] != n {
			t.Fatalf("pointer to %v is not a node of the flow", n)
		}
	}

	in(f.Start, false)
	if len(f.Order) != len(f.Nodes) {
		t.Fatalf("order %v, nodes %d", f.Order, len(f.Nodes))
	}
	for _, id := range f.Order {
		n := f.Nodes[id]
		in(n, false)
		for _, p := range []Policy{n.NoInput, n.NoMatch} {
			in(p.Fallback, true)
			for _, s := range p.Steps {
				in(s.Goto, true)
			}
		}
		for _, g := range n.Global {
			in(g.Goto, g.Back)
		}

		switch n.Kind {
		case KindMenu:
			if len(n.Branches) == 0 || n.Timeout <= 0 || n.InterDigit <= 0 {
				t.Fatalf("menu %s: %+v", id, n)
			}
			for _, b := range n.Branches {
				in(b, false)
			}
		case KindCollect:
			c := n.Collect
			if c == nil || c.MinDigits < 0 || c.MaxDigits < max(c.MinDigits, 1) ||
				n.Timeout <= 0 || n.InterDigit <= 0 {
				t.Fatalf("collect %s: %+v %+v", id, n, c)
			}
			in(c.Next, false)
		case KindEnd:
			if len(n.Variables) == 0 {
				t.Fatalf("end %s has no variables", id)
			}
		default:
			t.Fatalf("node %s has kind %v", id, n.Kind)
		}
	}
}
