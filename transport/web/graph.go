package web

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// graph is a flow as the page draws it. Nodes are named by a key of
// their own ("n0", "n1", ...) so that no flow's node id can clash with the
// two boxes the drawing adds: "any" for the global keys most nodes share,
// and "back" for the previous node.
type graph struct {
	Name  string      `json:"name"`
	Start string      `json:"start"`
	Nodes []graphNode `json:"nodes"`
	Edges []graphEdge `json:"edges"`
}

type graphNode struct {
	Key  string `json:"key"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Detail is a second line under the id, such as "4 digits".
	Detail    string `json:"detail,omitempty"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

// graphEdge is one arrow. Kind is "key" (menu branches, with Keys),
// "value" (a collected value), "noInput", "noMatch" or "escalation" (for
// both; these are drawn dotted) or "global" (a global key, with Keys).
type graphEdge struct {
	From  string   `json:"from"`
	To    string   `json:"to"`
	Kind  string   `json:"kind"`
	Label string   `json:"label"`
	Keys  []string `json:"keys,omitempty"`
}

// The keys of the boxes that are not nodes of the flow.
const (
	anyKey  = "any"
	backKey = "back"
)

// newGraph describes f for drawing. The result depends only on f.
func newGraph(f *ivrspec.Flow) *graph {
	g := &graph{Nodes: []graphNode{}, Edges: []graphEdge{}}
	if f == nil {
		return g
	}
	g.Name = f.Name

	keys := make(map[*ivrspec.Node]string, len(f.Order))
	for _, id := range f.Order {
		n := f.Nodes[id]
		if n == nil {
			continue
		}
		keys[n] = "n" + strconv.Itoa(len(g.Nodes))
		g.Nodes = append(g.Nodes, graphNode{Key: keys[n], ID: n.ID, Kind: n.Kind.String(),
			Detail: detail(n), Sensitive: n.Collect != nil && n.Collect.Sensitive})
	}
	g.Start = keys[f.Start]

	b := &builder{g: g, keys: keys, common: commonGlobals(f)}
	for _, id := range f.Order {
		if n := f.Nodes[id]; n != nil {
			b.edges(n)
		}
	}
	b.globals(f)
	return g
}

// detail is the second line of a node's box.
func detail(n *ivrspec.Node) string {
	switch {
	case n.Collect != nil:
		return digits(n.Collect)
	case n.Kind == ivrspec.KindEnd:
		return "end"
	}
	return n.Kind.String()
}

// digits says how many keys a collect node takes.
func digits(c *ivrspec.Collect) string {
	switch {
	case c.MinDigits == c.MaxDigits && c.MaxDigits == 1:
		return "1 digit"
	case c.MinDigits == c.MaxDigits:
		return fmt.Sprintf("%d digits", c.MaxDigits)
	}
	return fmt.Sprintf("%d-%d digits", c.MinDigits, c.MaxDigits)
}

type builder struct {
	g    *graph
	keys map[*ivrspec.Node]string
	// common holds the global keys drawn from the "any" box.
	common   map[byte]ivrspec.GlobalKey
	backUsed bool
}

func (b *builder) add(from string, to *ivrspec.Node, kind, label string, keys []string) {
	key, ok := b.keys[to]
	if to == nil || !ok {
		return
	}
	b.g.Edges = append(b.g.Edges, graphEdge{From: from, To: key, Kind: kind, Label: label, Keys: keys})
}

// edges adds the arrows leaving n: its branches, with the keys that share
// a target on one arrow, its collected value, its escalations, and the
// global keys it does not share with the rest of the flow.
func (b *builder) edges(n *ivrspec.Node) {
	from := b.keys[n]
	var targets []*ivrspec.Node
	byTarget := make(map[*ivrspec.Node][]string)
	for i := 0; i < len(ivrspec.Keys); i++ {
		t := n.Branches[ivrspec.Keys[i]]
		if t == nil {
			continue
		}
		if byTarget[t] == nil {
			targets = append(targets, t)
		}
		byTarget[t] = append(byTarget[t], ivrspec.Keys[i:i+1])
	}
	for _, t := range targets {
		b.add(from, t, "key", strings.Join(byTarget[t], ", "), byTarget[t])
	}

	if n.Collect != nil {
		b.add(from, n.Collect.Next, "value", "value", nil)
	}
	b.escalations(from, n)

	for i := 0; i < len(ivrspec.Keys); i++ {
		k, ok := n.Global[ivrspec.Keys[i]]
		if c, shared := b.common[ivrspec.Keys[i]]; ok && (!shared || c != k) {
			b.global(from, ivrspec.Keys[i], k, "")
		}
	}
}

// escalations adds one dotted arrow to each node n's no-input and
// no-match policies can send the call to; a node both lead to gets one
// arrow for both.
func (b *builder) escalations(from string, n *ivrspec.Node) {
	noInput, noMatch := targets(n.NoInput), targets(n.NoMatch)
	for _, t := range noInput {
		if slices.Contains(noMatch, t) {
			b.add(from, t, "escalation", "no input, no match", nil)
			continue
		}
		b.add(from, t, "noInput", "no input", nil)
	}
	for _, t := range noMatch {
		if !slices.Contains(noInput, t) {
			b.add(from, t, "noMatch", "no match", nil)
		}
	}
}

// targets lists, once each, the nodes p can send the call to.
func targets(p ivrspec.Policy) []*ivrspec.Node {
	var out []*ivrspec.Node
	add := func(n *ivrspec.Node) {
		if n != nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, s := range p.Steps {
		add(s.Goto)
	}
	add(p.Fallback)
	return out
}

// global adds global key k leaving from; note says where the key is off.
func (b *builder) global(from string, key byte, k ivrspec.GlobalKey, note string) {
	label := string(key)
	if k.Preempt {
		label += " preempts"
	}
	if note != "" {
		label += " (" + note + ")"
	}
	keys := []string{string(key)}

	if k.Back {
		b.backUsed = true
		b.g.Edges = append(b.g.Edges,
			graphEdge{From: from, To: backKey, Kind: "global", Label: label, Keys: keys})
		return
	}
	b.add(from, k.Goto, "global", label, keys)
}

// globals adds the "any" box with the global keys most nodes share, and
// the "back" box when a key returns to the previous node.
func (b *builder) globals(f *ivrspec.Flow) {
	edges := len(b.g.Edges)
	for i := 0; i < len(ivrspec.Keys); i++ {
		key := ivrspec.Keys[i]
		k, ok := b.common[key]
		if !ok {
			continue
		}
		var off []string
		for _, id := range f.Order {
			if n := f.Nodes[id]; waits(n) && !hasKey(n, key) {
				off = append(off, id)
			}
		}
		note := ""
		if len(off) > 0 {
			note = "off at " + strings.Join(off, ", ")
		}
		b.global(anyKey, key, k, note)
	}

	if len(b.g.Edges) > edges {
		b.g.Nodes = append(b.g.Nodes,
			graphNode{Key: anyKey, ID: "any node", Kind: "any", Detail: "global keys"})
	}
	if b.backUsed {
		b.g.Nodes = append(b.g.Nodes,
			graphNode{Key: backKey, ID: "previous node", Kind: "back", Detail: "back"})
	}
}

func hasKey(n *ivrspec.Node, key byte) bool {
	_, ok := n.Global[key]
	return ok
}

// waits reports whether n waits for keys, so global keys apply to it.
func waits(n *ivrspec.Node) bool {
	return n != nil && (n.Kind == ivrspec.KindMenu || n.Kind == ivrspec.KindCollect)
}

// commonGlobals finds the global keys of the flow as a whole, as the
// Mermaid drawing does: the Flow keeps only each node's keys, so for each
// key this takes the meaning most nodes give it; on a tie, the one that
// reached that count first.
func commonGlobals(f *ivrspec.Flow) map[byte]ivrspec.GlobalKey {
	common := make(map[byte]ivrspec.GlobalKey)
	for i := 0; i < len(ivrspec.Keys); i++ {
		counts := make(map[ivrspec.GlobalKey]int)
		best, most := ivrspec.GlobalKey{}, 0
		for _, id := range f.Order {
			n := f.Nodes[id]
			if !waits(n) {
				continue
			}
			k, ok := n.Global[ivrspec.Keys[i]]
			if !ok {
				continue
			}
			counts[k]++
			if counts[k] > most {
				best, most = k, counts[k]
			}
		}
		if most > 0 {
			common[ivrspec.Keys[i]] = best
		}
	}
	return common
}
