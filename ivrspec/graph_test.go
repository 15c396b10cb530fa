package ivrspec

import (
	"testing"
)

const contractMermaid = `flowchart TD
    entry(("start")) --> n_main_menu
    n_main_menu["main_menu"]
    n_department["department"]
    n_confirm["confirm"]
    n_completed((("completed")))
    n_timed_out((("timed_out")))
    n_main_menu -->|"1, 2, 3"| n_department
    n_main_menu -.->|"no input"| n_timed_out
    n_department -->|"A, B"| n_confirm
    n_department -.->|"no input"| n_timed_out
    n_confirm -->|"1"| n_completed
    n_confirm -.->|"no input"| n_timed_out
`

func TestMermaidContract(t *testing.T) {
	t.Parallel()

	f, err := LoadFile("examples/contract.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Mermaid(); got != contractMermaid {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, contractMermaid)
	}
}

// graphFeatures uses every kind of edge, and ids Mermaid cannot take as
// they are.
const graphFeatures = `
version: 1
start: main-menu
global:
  "0": {goto: end}
  "*": {back: true}
  "9": {goto: main-menu, preempt: true}
nodes:
  main-menu:
    type: menu
    global: {"*": off}
    noMatch:
      steps: [{prompt: again}, {goto: help.desk}, {goto: help.desk}]
      fallback: end
    branches: {1: acct.no, 2: acct_no, 3: help.desk, "#": help.desk}
  acct.no:
    type: collect
    minDigits: 4
    maxDigits: 8
    next: acct_no
  acct_no:
    type: collect
    global: {"0": {goto: help.desk, preempt: true}}
    next: end
  help.desk:
    type: collect
    minDigits: 0
    noInput: {fallback: end}
    next: end
  end:
    type: end
    variables: {ivr_status: done}
`

func TestMermaidFeatures(t *testing.T) {
	t.Parallel()

	f, err := Parse("features.yaml", []byte(graphFeatures), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Mermaid(); got != featuresMermaid {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, featuresMermaid)
	}
}

// featuresMermaid is graphFeatures drawn. Ids that differ only in - . _
// stay apart; end is not used as a Mermaid id; global keys shared by most
// nodes leave "any node", naming where they are off and where a node's
// own digit shadows them; acct_no's own 0 leaves acct_no.
const featuresMermaid = `flowchart TD
    entry(("start")) --> n_main_menu
    n_main_menu["main-menu"]
    n_acct_no[/"acct.no (4-8 digits)"/]
    n_acct_no_2[/"acct_no (1 digit)"/]
    n_help_desk[/"help.desk (0-1 digits)"/]
    n_end((("end")))
    n_main_menu -->|"1"| n_acct_no
    n_main_menu -->|"2"| n_acct_no_2
    n_main_menu -->|"3, #"| n_help_desk
    n_main_menu -.->|"no match"| n_help_desk
    n_main_menu -.->|"no match"| n_end
    n_acct_no -->|"value"| n_acct_no_2
    n_acct_no_2 -->|"value"| n_end
    n_acct_no_2 -->|"0 preempts"| n_help_desk
    n_help_desk -->|"value"| n_end
    n_help_desk -.->|"no input"| n_end
    any{{"any node"}}
    any -->|"9 preempts"| n_main_menu
    any -->|"* (off at main-menu)"| back(["previous node"])
    any -->|"0 (shadowed at acct.no, help.desk)"| n_end
`

// TestMermaidHandBuilt checks that flows built without Parse, possibly
// incomplete, are drawn without a panic.
func TestMermaidHandBuilt(t *testing.T) {
	t.Parallel()

	lone := &Node{ID: "x\"y", Kind: KindMenu, Branches: map[byte]*Node{'1': nil}}
	tests := []struct {
		name string
		flow *Flow
		want string
	}{
		{"empty", &Flow{}, "flowchart TD\n"},
		{"missing node", &Flow{Order: []string{"gone"}}, "flowchart TD\n"},
		{"quote in id", &Flow{Start: lone, Order: []string{lone.ID},
			Nodes: map[string]*Node{lone.ID: lone}},
			"flowchart TD\n    entry((\"start\")) --> n_x_y\n    n_x_y[\"x#quot;y\"]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.flow.Mermaid(); got != tt.want {
				t.Errorf("Mermaid() = %q, want %q", got, tt.want)
			}
		})
	}
}
