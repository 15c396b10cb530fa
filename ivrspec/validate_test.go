package ivrspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// problems returns the problems of err as "file:line:col: msg" lines.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %T %v is not a *LoadError", err, err)
	}
	lines := make([]string, len(le.Problems))
	for i, p := range le.Problems {
		lines[i] = p.String()
	}
	if got := strings.Join(lines, "\n"); got != le.Error() {
		t.Errorf("Error() = %q, want the problems one per line %q", le.Error(), got)
	}
	return lines
}

// TestLoadProblems loads each bad file under testdata and checks that
// every problem in it is reported, at once, where it is.
func TestLoadProblems(t *testing.T) {
	t.Parallel()

	tests := []struct {
		file string
		want []string
	}{
		{"syntax.yaml", []string{
			"3:1: invalid YAML: did not find expected key",
		}},
		{"empty.yaml", []string{
			"1:1: file is empty",
		}},
		{"notmap.yaml", []string{
			"1:1: flow must be a mapping, got a list",
		}},
		{"top.yaml", []string{
			"2:1: start is missing",
			`2:1: unknown field "strat"`,
			"2:1: version is missing",
		}},
		{"version.yaml", []string{
			"1:10: version must be 1, got 2",
			`2:8: unknown node "nowhere"`,
			"7:1: only one YAML document is allowed",
		}},
		{"types.yaml", []string{
			`1:10: version must be an integer, got "1"`,
			`4:12: timeout must be a duration such as 5s, got "10"`,
			"5:22: interDigitTimeout must be more than zero",
			"6:12: noInput must be a mapping, got a list",
			"10:13: prompt must be a string, got a mapping",
			"11:21: promptDuration must not be negative",
			`12:14: bargeIn must be true or false, got "yes"`,
			"13:15: branches must be a mapping, got a list",
			"14:3: node ask cannot be reached from start",
			`16:16: minDigits must be an integer, got "four"`,
			`17:16: maxDigits must be an integer, got "2.5"`,
			`18:21: keepTerminator must be true or false, got "1"`,
			"19:11: next must be a string, got a mapping",
			"23:19: variable ivr_status must be a string, got a list",
			"24:16: variable ivr_note must be a string, got null",
		}},
		{"keys.yaml", []string{
			`5:3: "E" is not a DTMF key (want 0-9, *, #, A-D)`,
			"6:3: key 0 used twice",
			"12:7: key 1 used twice",
			`13:7: "12" is not a DTMF key (want 0-9, *, #, A-D)`,
			`15:7: "a" is not a DTMF key (want 0-9, *, #, A-D)`,
			"18:11: key # is both in keys and in terminators",
			`22:11: keys: "x" is not a DTMF key (want 0-9, *, #, A-D)`,
			"23:18: terminators: key # used twice",
		}},
		{"digits.yaml", []string{
			"6:16: minDigits 5 is more than maxDigits 4",
			"11:16: minDigits must not be negative",
			"16:16: maxDigits must be at least 1",
			"17:14: pattern does not compile: missing closing ): `(\\d`",
			"22:11: keys is empty: a value needs at least one key",
			"23:18: termTimeout must not be negative",
		}},
		{"kinds.yaml", []string{
			"4:13: ignore applies only to noMatch",
			"6:3: menu main has no branches",
			"8:15: ignore discards wrong keys, so steps and fallback would never run",
			"9:5: next does not belong to a menu node",
			"10:3: collect ask has no next",
			"10:3: node ask cannot be reached from start",
			"12:5: branches does not belong to a collect node",
			"13:3: node typeless cannot be reached from start",
			"13:3: node typeless has no type",
			"15:3: node odd cannot be reached from start",
			`16:11: type must be menu, collect or end, got "form"`,
			"17:3: end node done has no variables",
			"19:5: timeout does not belong to an end node",
			"20:5: global does not belong to an end node",
			"21:3: end node empty has no way in",
			"23:16: end node empty has no variables",
			"24:3: node idle cannot be reached from start",
			"26:15: menu idle has no branches",
		}},
		{"refs.yaml", []string{
			`4:15: unknown node "operater"`,
			`9:39: unknown node "nowhere"`,
			`10:17: unknown node "gone"`,
			`12:10: unknown node "salez"`,
			`16:11: unknown node "confrim"`,
			"22:19: variable wrong_kind: ${value.main} needs a collect node, main is a menu node",
			"23:15: variable choice: ${key.ask} needs a menu node, ask is a collect node",
			`24:16: variable missing: ${key.menu_x}: unknown node "menu_x"`,
			"25:15: variable broken: unclosed ${ at offset 0",
			"26:15: variable dollar: lone $ at offset 6: write $$ for a dollar sign",
		}},
		{"reach.yaml", []string{
			"7:3: node orphan cannot be reached from start",
			"10:3: end node lonely has no way in",
			"13:3: end node unused has no way in",
		}},
		{"silence.yaml", []string{
			"9:25: silence loops through main -> help -> main and never ends the call",
			"23:25: silence loops through self -> self and never ends the call",
		}},
		{"dup.yaml", []string{
			`6:5: field "type" set twice`,
			"8:3: node main defined twice",
			`10:3: node id "bad id" may use only letters, digits, _, - and .`,
			"16:7: variable ivr_status set twice",
			"17:7: variable name is empty",
		}},
		{"global.yaml", []string{
			"4:3: global key 0 needs goto or back: true",
			"5:3: global key * has both goto and back",
			`6:30: preempt must be true or false, got "maybe"`,
			`7:8: global key 9 must be a mapping, got "go"`,
			`8:3: "<<" is not a DTMF key (want 0-9, *, #, A-D)`,
			"13:7: global key 5 is off here, but the flow has no global key 5",
			`14:12: global key 0 must be a mapping or "off", got "on"`,
		}},
		{"alias.yaml", []string{
			`6:15: unknown node "gone"`,
			"12:3: node done has no type",
			"13:5: merge keys (<<) are not supported",
		}},
		{"bad.json", []string{
			`5:56: "X" is not a DTMF key (want 0-9, *, #, A-D)`,
			`6:71: unknown field "extra"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tt.file)
			f, err := LoadFile(path, Options{})
			if f != nil {
				t.Errorf("a bad file returned a flow")
			}

			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = path + ":" + w
			}
			if got := problems(t, err); !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestLoadFixturesCovered keeps the fixtures and TestLoadProblems in step:
// a bad file nobody checks proves nothing.
func TestLoadFixturesCovered(t *testing.T) {
	t.Parallel()

	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, err := LoadFile(filepath.Join("testdata", e.Name()), Options{})
		if e.Name() == "contract.json" || strings.HasPrefix(e.Name(), "fuzz") || e.IsDir() {
			continue
		}
		if err == nil {
			t.Errorf("testdata/%s loads without problems", e.Name())
		}
	}
}

// graphFlow is a flow whose reachability and silence the cases below
// change by adding to it.
const graphFlow = `
version: 1
start: main
global:
  "0": {goto: operator}
nodes:
  main:
    type: menu
    branches: {1: ask}
  ask:
    type: collect
    next: done
  operator:
    type: end
    variables: {ivr_status: operator}
  done:
    type: end
    variables: {ivr_status: completed}
`

// The lines of graphFlow that after adds fields below.
const (
	atMain = "    branches: {1: ask}"
	atAsk  = "    next: done"
)

// after adds line to graphFlow s after the line anchor, as a field of the
// same node.
func after(s, anchor, line string) string {
	return strings.Replace(s, anchor, anchor+"\n    "+line, 1)
}

// orphan adds an end node nothing leads to at the end of graphFlow s.
func orphan(s string) string {
	return s + "  lost:\n    type: end\n    variables: {ivr_status: lost}\n"
}

// before adds a top-level line to graphFlow s before its nodes.
func before(s, line string) string {
	return strings.Replace(s, "nodes:", line+"\nnodes:", 1)
}

func TestLoadGraphRules(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		change func(string) string
		want   []string
	}{
		{
			name:   "a global key is a way in",
			change: func(s string) string { return s },
		},
		{
			name: "a global key off everywhere is not",
			change: func(s string) string {
				s = after(s, atMain, `global: {"0": off}`)
				return after(s, atAsk, `global: {"0": null}`)
			},
			want: []string{"15:3: end node operator has no way in"},
		},
		{
			name: "a node's own global key is a way in",
			change: func(s string) string {
				s = strings.Replace(s, `"0": {goto: operator}`, `"0": {goto: done}`, 1)
				return after(s, atAsk, `global: {"*": {goto: operator}}`)
			},
		},
		{
			name: "an escalation is a way in",
			change: func(s string) string {
				s = strings.Replace(s, `"0": {goto: operator}`, `"0": {goto: done}`, 1)
				return after(s, atAsk, "noMatch: {steps: [{goto: operator}]}")
			},
		},
		{
			name: "unknown start",
			change: func(s string) string {
				return strings.Replace(s, "start: main", "start: mian", 1)
			},
			want: []string{`3:8: unknown node "mian"`},
		},
		{
			name: "an orphan is reported alongside an unreadable reference",
			change: func(s string) string {
				return orphan(after(s, atMain, "noMatch: {fallback: [operator]}"))
			},
			want: []string{
				"10:25: fallback must be a string, got a list",
				"20:3: end node lost has no way in",
			},
		},
		{
			name: "an orphan is reported alongside an unknown reference",
			change: func(s string) string {
				return orphan(after(s, atMain, "noMatch: {fallback: nowhere}"))
			},
			want: []string{
				`10:25: unknown node "nowhere"`,
				"20:3: end node lost has no way in",
			},
		},
		{
			name: "a node named in an unreadable reference is no orphan",
			change: func(s string) string {
				return orphan(after(s, atMain, "noMatch: {fallback: [lost]}"))
			},
			want: []string{"10:25: fallback must be a string, got a list"},
		},
		{
			name: "a branch with a bad key still leads to its node",
			change: func(s string) string {
				return orphan(strings.Replace(s, atMain, "    branches: {1: ask, X: lost}", 1))
			},
			want: []string{`9:24: "X" is not a DTMF key (want 0-9, *, #, A-D)`},
		},
		{
			name: "a node's own global key on a branch key never fires",
			change: func(s string) string {
				return after(s, atMain, `global: {"1": {goto: operator}}`)
			},
			want: []string{"10:14: global key 1 can never fire at main, which uses 1 itself; " +
				"set preempt: true to make it win"},
		},
		{
			name: "a node's own global key on a digit never fires",
			change: func(s string) string {
				return after(s, atAsk, `global: {"5": {goto: operator}}`)
			},
			want: []string{"13:14: global key 5 can never fire at ask, which uses 5 itself; " +
				"set preempt: true to make it win"},
		},
		{
			name: "a node's own global key on its terminator never fires",
			change: func(s string) string {
				return after(s, atAsk, `global: {"#": {goto: operator}}`)
			},
			want: []string{"13:14: global key # can never fire at ask, which uses # itself; " +
				"set preempt: true to make it win"},
		},
		{
			name: "a node's own global key on its clear key never fires",
			change: func(s string) string {
				s = after(s, atAsk, `clearKey: "*"`)
				return after(s, atAsk, `global: {"*": {goto: operator}}`)
			},
			want: []string{"13:14: global key * can never fire at ask, which uses * itself; " +
				"set preempt: true to make it win"},
		},
		{
			name: "a node's own global key that preempts its digit",
			change: func(s string) string {
				return after(s, atAsk, `global: {"5": {goto: operator, preempt: true}}`)
			},
		},
		{
			name: "silence through the defaults",
			change: func(s string) string {
				return before(s, "defaults: {noInput: {fallback: main}}")
			},
			want: []string{"6:32: silence loops through main -> main and never ends the call"},
		},
		{
			name: "silence that ends the call",
			change: func(s string) string {
				return before(s, "defaults: {noInput: {fallback: operator}}")
			},
		},
		{
			name: "silence that retries for ever",
			change: func(s string) string {
				return before(s, "defaults: {noInput: {steps: [{prompt: again}]}}")
			},
		},
		{
			name: "silence leaves at the first step with a goto",
			change: func(s string) string {
				s = after(s, atMain, "noInput: {fallback: ask}")
				return after(s, atAsk,
					"noInput: {steps: [{prompt: p}, {goto: main}, {goto: done}], fallback: done}")
			},
			want: []string{"10:25: silence loops through main -> ask -> main and never ends the call"},
		},
		{
			name: "wrong keys that go round nodes are no loop",
			change: func(s string) string {
				s = after(s, atMain, "noMatch: {fallback: ask}")
				return after(s, atAsk, "noMatch: {fallback: main}")
			},
		},
		{
			name: "wrong keys and silence round the same nodes: only silence is reported",
			change: func(s string) string {
				s = after(s, atMain, "noMatch: {fallback: ask}")
				s = after(s, atMain, "noInput: {fallback: ask}")
				s = after(s, atAsk, "noMatch: {fallback: main}")
				return after(s, atAsk, "noInput: {fallback: main}")
			},
			want: []string{"10:25: silence loops through main -> ask -> main and never ends the call"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.change(graphFlow)
			_, err := Parse("graph.yaml", []byte(src), Options{})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v\nin\n%s", err, src)
				}
				return
			}

			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = "graph.yaml:" + w
			}
			if got := problems(t, err); !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s\nin\n%s",
					strings.Join(got, "\n"), strings.Join(want, "\n"), src)
			}
		})
	}
}

// TestLoadAliasBomb checks that a small file naming large mappings many
// times through aliases is refused instead of being walked in full.
func TestLoadAliasBomb(t *testing.T) {
	t.Parallel()

	var b strings.Builder
	b.WriteString("version: 1\nstart: n0\ndefaults:\n  noInput:\n    steps: &s [")
	for i := 0; i < 2000; i++ {
		b.WriteString("{prompt: p},")
	}
	b.WriteString("]\nnodes:\n")
	b.WriteString("  n0: &n {type: menu, branches: {1: n0}, noInput: {steps: *s}, noMatch: {steps: *s}}\n")
	for i := 1; i < 2000; i++ {
		fmt.Fprintf(&b, "  n%d: *n\n", i)
	}

	_, err := Parse("bomb.yaml", []byte(b.String()), Options{})
	if err == nil || !strings.Contains(err.Error(), "file is too large") {
		t.Errorf("err = %v, want the file refused as too large", err)
	}
}

// TestLoadSmallProblems covers problems too small for a file of their own.
func TestLoadSmallProblems(t *testing.T) {
	t.Parallel()

	const end = "  e: {type: end, variables: {x: y}}\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"nodes missing", "version: 1\nstart: a\n", []string{
			"1:1: nodes is missing",
			`2:8: unknown node "a"`,
		}},
		{"nodes empty", "version: 1\nstart: a\nnodes: {}\n", []string{
			`2:8: unknown node "a"`,
			"3:8: nodes is empty",
		}},
		{"null document", "---\n", []string{
			"2:1: flow must be a mapping, got null",
		}},
		{"start as a list", "version: 1\nstart: [e]\nnodes:\n" + end, []string{
			"2:8: start must be a string, got a list",
		}},
		{"key as a mapping", "version: 1\nstart: e\nglobal:\n  ? {a: b}\n  : {goto: e}\nnodes:\n" + end,
			[]string{
				"4:5: global: a key must be a plain value, got a mapping",
			}},
		{"lowercase key", "version: 1\nstart: m\nnodes:\n  m: {type: menu, branches: {b: e}}\n" + end,
			[]string{
				`4:30: "b" is not a DTMF key (want 0-9, *, #, A-D)`,
			}},
		{"unquoted keys equal quoted ones", "version: 1\nstart: m\nnodes:\n" +
			"  m: {type: menu, branches: {1: e, \"1\": e}}\n" + end, []string{
			"4:36: key 1 used twice",
		}},
		{"zero timeout", "version: 1\nstart: m\nnodes:\n" +
			"  m: {type: menu, timeout: 0s, branches: {1: e}}\n" + end, []string{
			"4:28: timeout must be more than zero",
		}},
		{"flush not a boolean", "version: 1\nstart: m\nnodes:\n" +
			"  m: {type: menu, flush: yes, branches: {1: e}}\n" + end, []string{
			`4:26: flush must be true or false, got "yes"`,
		}},
		{"flush at an end node", "version: 1\nstart: m\nnodes:\n" +
			"  m: {type: menu, branches: {1: e}}\n  e: {type: end, flush: true, variables: {x: y}}\n",
			[]string{
				"5:18: flush does not belong to an end node",
			}},
		{"required terminator without one", "version: 1\nstart: c\nnodes:\n" +
			"  c: {type: collect, terminators: '', requireTerminator: true, next: e}\n" + end, []string{
			"4:58: requireTerminator needs a terminator key",
		}},
		{"required terminator with a term timeout", "version: 1\nstart: c\nnodes:\n" +
			"  c: {type: collect, termTimeout: 2s, requireTerminator: true, next: e}\n" + end, []string{
			"4:35: termTimeout has no effect with requireTerminator",
		}},
		{"clear key that is a terminator", "version: 1\nstart: c\nnodes:\n" +
			"  c: {type: collect, clearKey: '#', next: e}\n" + end, []string{
			"4:32: clearKey # is also a terminator",
		}},
		{"clear key that is a value key", "version: 1\nstart: c\nnodes:\n" +
			"  c: {type: collect, clearKey: '0', next: e}\n" + end, []string{
			"4:32: clearKey 0 is also in keys",
		}},
		{"clear key that is no key", "version: 1\nstart: c\nnodes:\n" +
			"  c: {type: collect, clearKey: '**', next: e}\n" + end, []string{
			`4:32: clearKey "**" is not a DTMF key (want 0-9, *, #, A-D)`,
		}},
		{"clear key at a menu", "version: 1\nstart: m\nnodes:\n" +
			"  m: {type: menu, clearKey: '*', branches: {1: e}}\n" + end, []string{
			"4:19: clearKey does not belong to a menu node",
		}},
		{"terminator in keys by default", "version: 1\nstart: c\nnodes:\n" +
			"  c: {type: collect, keys: '0123*#', next: e}\n" + end, []string{
			"4:28: key # is both in keys and in terminators",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("small.yaml", []byte(tt.src), Options{})
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = "small.yaml:" + w
			}
			if got := problems(t, err); !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
