package ivrspec

import (
	"fmt"
	"strconv"
	"strings"
)

// Mermaid draws f as a Mermaid flowchart, to paste into Markdown where
// reviewers can see a flow without reading its file. Menus are
// rectangles, collect nodes parallelograms and end nodes double circles.
// Solid edges are keys and values; dotted ones are where silence and wrong
// keys lead. Global keys leave a single "any node" box; a node that
// overrides one shows its own edge. The output depends only on f.
func (f *Flow) Mermaid() string {
	g := &mermaid{flow: f, ids: mermaidIDs(f)}
	g.common = commonGlobals(f)

	g.line("flowchart TD")
	if start, ok := g.ids[f.Start]; ok {
		g.line("    entry((\"start\")) --> %s", start)
	}
	for _, id := range f.Order {
		g.node(f.Nodes[id])
	}
	for _, id := range f.Order {
		if n := f.Nodes[id]; n != nil {
			g.edges(n)
		}
	}
	g.globals()
	return g.b.String()
}

type mermaid struct {
	b    strings.Builder
	flow *Flow
	ids  map[*Node]string
	// common holds the global keys drawn from the "any node" box.
	common map[byte]GlobalKey
}

func (g *mermaid) line(format string, args ...any) {
	fmt.Fprintf(&g.b, format, args...)
	g.b.WriteByte('\n')
}

// mermaidIDs gives each node an identifier Mermaid accepts: its id with
// anything but letters, digits and _ replaced, behind a prefix so no node
// is named after a Mermaid keyword such as end.
func mermaidIDs(f *Flow) map[*Node]string {
	ids := make(map[*Node]string, len(f.Order))
	used := make(map[string]bool, len(f.Order))
	for _, id := range f.Order {
		n := f.Nodes[id]
		if n == nil {
			continue
		}

		base := "n_" + strings.Map(func(r rune) rune {
			if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return '_'
		}, id)
		name := base
		for i := 2; used[name]; i++ {
			name = base + "_" + strconv.Itoa(i)
		}
		used[name] = true
		ids[n] = name
	}
	return ids
}

// label quotes s as a Mermaid label.
func label(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"`
}

func (g *mermaid) node(n *Node) {
	id, ok := g.ids[n]
	if !ok {
		return
	}

	switch n.Kind {
	case KindCollect:
		g.line("    %s[/%s/]", id, label(n.ID+" ("+digits(n.Collect)+")"))
	case KindEnd:
		g.line("    %s((%s))", id, "("+label(n.ID)+")")
	default:
		g.line("    %s[%s]", id, label(n.ID))
	}
}

// digits describes how many keys a collect node takes.
func digits(c *Collect) string {
	switch {
	case c == nil:
		return "digits"
	case c.MinDigits == c.MaxDigits && c.MaxDigits == 1:
		return "1 digit"
	case c.MinDigits == c.MaxDigits:
		return fmt.Sprintf("%d digits", c.MaxDigits)
	}
	return fmt.Sprintf("%d-%d digits", c.MinDigits, c.MaxDigits)
}

// edges draws the edges leaving n: branches, with the keys that share a
// target on one edge, the collected value, escalations, and the global
// keys n does not share with the rest of the flow.
func (g *mermaid) edges(n *Node) {
	from := g.ids[n]
	var targets []*Node
	keys := make(map[*Node][]string)
	for i := 0; i < len(Keys); i++ {
		t := n.Branches[Keys[i]]
		if t == nil {
			continue
		}
		if keys[t] == nil {
			targets = append(targets, t)
		}
		keys[t] = append(keys[t], Keys[i:i+1])
	}
	for _, t := range targets {
		g.edge(from, "-->", strings.Join(keys[t], ", "), t)
	}

	if n.Collect != nil {
		g.edge(from, "-->", "value", n.Collect.Next)
	}
	g.escalation(from, "no input", n.NoInput)
	g.escalation(from, "no match", n.NoMatch)

	for i := 0; i < len(Keys); i++ {
		k, ok := n.Global[Keys[i]]
		if !ok || shadowed(n, Keys[i], k) {
			continue
		}
		if c, shared := g.common[Keys[i]]; !shared || c != k {
			g.globalEdge(from, Keys[i], k, "")
		}
	}
}

// shadowed reports whether global key k never fires at n because n uses
// the key itself and k does not preempt it.
func shadowed(n *Node, key byte, k GlobalKey) bool {
	return !k.Preempt && uses(n, key)
}

// escalation draws a dotted edge to each node p can send the call to.
func (g *mermaid) escalation(from, what string, p Policy) {
	var drawn []*Node
	for _, s := range p.Steps {
		drawn = g.once(from, what, s.Goto, drawn)
	}
	g.once(from, what, p.Fallback, drawn)
}

func (g *mermaid) once(from, what string, to *Node, drawn []*Node) []*Node {
	for _, d := range drawn {
		if d == to {
			return drawn
		}
	}
	g.edge(from, "-.->", what, to)
	return append(drawn, to)
}

func (g *mermaid) edge(from, arrow, text string, to *Node) {
	id, ok := g.ids[to]
	if to == nil || !ok {
		return
	}
	g.line("    %s %s|%s| %s", from, arrow, label(text), id)
}

// globalEdge draws global key k from node from; note says where the key
// is off.
func (g *mermaid) globalEdge(from string, key byte, k GlobalKey, note string) {
	text := string(key)
	if k.Preempt {
		text += " preempts"
	}
	if note != "" {
		text += " (" + note + ")"
	}

	if k.Back {
		g.line("    %s -->|%s| back([\"previous node\"])", from, label(text))
		return
	}
	g.edge(from, "-->", text, k.Goto)
}

// globals draws the global keys most nodes share from the "any node" box,
// naming the nodes where a key is off and those where the node's own use
// of the key shadows it.
func (g *mermaid) globals() {
	if len(g.common) == 0 {
		return
	}

	g.line("    any{{\"any node\"}}")
	for i := 0; i < len(Keys); i++ {
		k, ok := g.common[Keys[i]]
		if !ok {
			continue
		}
		var off, shadow []string
		for _, id := range g.flow.Order {
			n := g.flow.Nodes[id]
			if !waits(n) {
				continue
			}
			switch nk, on := n.Global[Keys[i]]; {
			case !on:
				off = append(off, id)
			case nk == k && shadowed(n, Keys[i], k):
				shadow = append(shadow, id)
			}
		}
		var notes []string
		if len(off) > 0 {
			notes = append(notes, "off at "+strings.Join(off, ", "))
		}
		if len(shadow) > 0 {
			notes = append(notes, "shadowed at "+strings.Join(shadow, ", "))
		}
		g.globalEdge("any", Keys[i], k, strings.Join(notes, "; "))
	}
}

// waits reports whether n waits for keys, so global keys apply to it.
func waits(n *Node) bool {
	return n != nil && (n.Kind == KindMenu || n.Kind == KindCollect)
}

// commonGlobals finds the global keys of the flow as a whole. The Flow
// keeps only each node's keys, so for each key this takes the meaning
// most nodes give it; on a tie, the one that reached that count first.
func commonGlobals(f *Flow) map[byte]GlobalKey {
	common := make(map[byte]GlobalKey)
	for i := 0; i < len(Keys); i++ {
		counts := make(map[GlobalKey]int)
		best, most := GlobalKey{}, 0
		for _, id := range f.Order {
			n := f.Nodes[id]
			if !waits(n) {
				continue
			}
			k, ok := n.Global[Keys[i]]
			if !ok {
				continue
			}
			counts[k]++
			if counts[k] > most {
				best, most = k, counts[k]
			}
		}
		if most > 0 {
			common[Keys[i]] = best
		}
	}
	return common
}
