package web

import (
	"slices"
	"testing"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// arrow is an edge named by node ids rather than drawing keys.
type arrow struct{ from, to, kind, label string }

func arrows(g *graph) []arrow {
	ids := map[string]string{}
	for _, n := range g.Nodes {
		ids[n.Key] = n.ID
	}
	out := make([]arrow, len(g.Edges))
	for i, e := range g.Edges {
		out[i] = arrow{ids[e.From], ids[e.To], e.Kind, e.Label}
	}
	return out
}

func node(g *graph, id string) (graphNode, bool) {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return graphNode{}, false
}

func TestGraph(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		flow string
		has  []arrow
		not  []arrow
		// nodes maps a node id to the detail drawn under it.
		nodes map[string]string
		check func(t *testing.T, g *graph)
	}{{
		name: "contract tree",
		flow: "contract.yaml",
		has: []arrow{
			{"main_menu", "department", "key", "1, 2, 3"},
			{"department", "confirm", "key", "A, B"},
			{"confirm", "completed", "key", "1"},
			{"main_menu", "timed_out", "noInput", "no input"},
			{"confirm", "timed_out", "noInput", "no input"},
		},
		nodes: map[string]string{"main_menu": "menu", "completed": "end"},
		check: func(t *testing.T, g *graph) {
			if _, ok := node(g, "any node"); ok {
				t.Error("a flow without global keys has an any-node box")
			}
			for _, e := range g.Edges {
				if e.Kind == "noMatch" || e.Kind == "escalation" {
					t.Errorf("arrow %+v for wrong keys, which the contract ignores", e)
				}
			}
		},
	}, {
		name: "bank line",
		flow: "bank.yaml",
		has: []arrow{
			{"account_number", "pin", "value", "value"},
			{"main_menu", "failed", "escalation", "no input, no match"},
			{"account_number", "operator", "escalation", "no input, no match"},
			{"any node", "operator", "global", "0"},
			{"any node", "previous node", "global", "*"},
		},
		not: []arrow{
			{"main_menu", "operator", "global", "0"},
		},
		nodes: map[string]string{
			"account_number": "8-12 digits", "pin": "4 digits", "any node": "global keys",
		},
		check: func(t *testing.T, g *graph) {
			if pin, _ := node(g, "pin"); !pin.Sensitive {
				t.Error("pin is not marked sensitive")
			}
		},
	}, {
		name: "support line",
		flow: "support.yaml",
		has: []arrow{
			{"any node", "agent", "global", "0"},
			{"billing", "billing_agent", "global", "0"},
			{"callback_number", "callback", "value", "value"},
		},
		nodes: map[string]string{"callback_number": "10 digits"},
	}}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ivrspec.LoadExample(tt.flow, ivrspec.Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := newGraph(f)
			if g.Name != f.Name {
				t.Errorf("name %q, want %q", g.Name, f.Name)
			}
			if start, _ := node(g, f.Start.ID); start.Key != g.Start {
				t.Errorf("start %q, want the key of %s", g.Start, f.Start.ID)
			}

			got := arrows(g)
			for _, a := range tt.has {
				if !slices.Contains(got, a) {
					t.Errorf("no arrow %+v in %+v", a, got)
				}
			}
			for _, a := range tt.not {
				if slices.Contains(got, a) {
					t.Errorf("arrow %+v drawn, want it only from the any-node box", a)
				}
			}
			for id, want := range tt.nodes {
				if n, ok := node(g, id); !ok || n.Detail != want {
					t.Errorf("node %s drawn as %+v, want detail %q", id, n, want)
				}
			}
			if tt.check != nil {
				tt.check(t, g)
			}
		})
	}
}

func TestGraphWithoutFlow(t *testing.T) {
	t.Parallel()
	g := newGraph(nil)
	if g.Nodes == nil || g.Edges == nil || len(g.Nodes)+len(g.Edges) != 0 {
		t.Errorf("graph of no flow is %+v, want empty lists the page can walk", g)
	}
}
