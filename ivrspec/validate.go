package ivrspec

import (
	"cmp"
	"errors"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// rawNode is one node as written.
type rawNode struct {
	id    string
	at    *yaml.Node
	index int
	kind  Kind

	prompt         string
	promptDuration time.Duration
	bargeIn        opt[bool]
	flush          bool
	timeout        opt[time.Duration]
	interDigit     opt[time.Duration]
	noInput        *rawPolicy
	noMatch        *rawPolicy
	global         []rawGlobal

	branches  []rawBranch
	collect   rawCollect
	variables []rawVar
}

type rawBranch struct {
	key byte
	to  ref
}

type rawCollect struct {
	minDigits, maxDigits opt[int]
	keys, terminators    opt[string]
	keepTerminator       bool
	requireTerminator    opt[bool]
	clearKey             opt[byte]
	termTimeout          opt[time.Duration]
	pattern              *regexp.Regexp
	sensitive            bool
	next                 ref
}

// rawVar is one variable of an end node; at is its value's node.
type rawVar struct {
	tmpl Template
	at   *yaml.Node
}

// nodeID limits node ids to what templates and diagrams can name.
var nodeID = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// nodes reads the nodes mapping, in the order written.
func (l *loader) nodes(p pair) []*rawNode {
	ps, ok := l.pairs(p.val, p.name)
	if !ok {
		return nil
	}
	if len(ps) == 0 {
		l.add(p.val, "nodes is empty")
	}

	var nodes []*rawNode
	seen := make(map[string]bool, len(ps))
	for _, e := range ps {
		if !nodeID.MatchString(e.name) {
			l.add(e.key, "node id %s may use only letters, digits, _, - and .", describe(e.key))
			l.skip(e.val)
			continue
		}
		if seen[e.name] {
			l.add(e.key, "node %s defined twice", e.name)
			continue
		}
		seen[e.name] = true

		n := l.node(e)
		n.index = len(nodes)
		nodes = append(nodes, n)
	}
	return nodes
}

// The fields each kind of node may have, beyond commonFields.
var (
	commonFields = []string{"type", "prompt", "promptDuration"}
	inputFields  = []string{
		"bargeIn", "flush", "timeout", "interDigitTimeout", "noInput", "noMatch", "global",
	}
	menuFields    = []string{"branches"}
	collectFields = []string{
		"minDigits", "maxDigits", "keys", "terminators", "keepTerminator",
		"requireTerminator", "clearKey", "termTimeout", "pattern", "sensitive", "next",
	}
	endFields = []string{"variables"}
)

// belongs reports whether field name belongs to a node of kind k.
func belongs(k Kind, name string) bool {
	if slices.Contains(commonFields, name) {
		return true
	}
	switch k {
	case KindMenu:
		return slices.Contains(inputFields, name) || slices.Contains(menuFields, name)
	case KindCollect:
		return slices.Contains(inputFields, name) || slices.Contains(collectFields, name)
	case KindEnd:
		return slices.Contains(endFields, name)
	}
	return false
}

// anyField reports whether name is a node field of any kind.
func anyField(name string) bool {
	return belongs(KindMenu, name) || belongs(KindCollect, name) || belongs(KindEnd, name)
}

// article returns "a" or "an" for a node kind, for messages.
func article(k Kind) string {
	if k == KindEnd {
		return "an"
	}
	return "a"
}

// node reads one node. A node that cannot be read is still returned, so
// references to it do not show up as unknown.
func (l *loader) node(e pair) *rawNode {
	n := &rawNode{id: e.name, at: e.key}
	fs, ok := l.fields(e.val, "node "+e.name, anyField)
	if !ok {
		return n
	}

	n.kind = l.kind(n, fs)
	if n.kind == 0 {
		l.skip(e.val)
	}
	for name, p := range fs {
		if n.kind != 0 && !belongs(n.kind, name) {
			l.add(p.key, "%s does not belong to %s %s node", name, article(n.kind), n.kind)
			l.skip(p.val)
			delete(fs, name)
		}
	}

	l.common(n, fs)
	switch n.kind {
	case KindMenu:
		l.branches(n, fs)
	case KindCollect:
		l.collect(n, fs)
	case KindEnd:
		l.variables(n, fs)
	}
	return n
}

func (l *loader) kind(n *rawNode, fs map[string]pair) Kind {
	p, ok := fs["type"]
	if !ok {
		l.add(n.at, "node %s has no type", n.id)
		return 0
	}
	s, ok := l.str(p)
	if !ok {
		return 0
	}

	for _, k := range []Kind{KindMenu, KindCollect, KindEnd} {
		if s == k.String() {
			return k
		}
	}
	l.add(p.val, "type must be menu, collect or end, got %q", s)
	return 0
}

// common reads the fields shared by every kind of node.
func (l *loader) common(n *rawNode, fs map[string]pair) {
	if p, ok := fs["prompt"]; ok {
		n.prompt, _ = l.str(p)
	}
	if p, ok := fs["promptDuration"]; ok {
		n.promptDuration, _ = l.duration(p, false)
	}
	if p, ok := fs["bargeIn"]; ok {
		if b, ok := l.boolean(p); ok {
			n.bargeIn = opt[bool]{v: b, at: p.val}
		}
	}
	if p, ok := fs["flush"]; ok {
		n.flush, _ = l.boolean(p)
	}
	n.timeout = l.optDuration(fs, "timeout", true)
	n.interDigit = l.optDuration(fs, "interDigitTimeout", true)
	if p, ok := fs["noInput"]; ok {
		n.noInput = l.policy(p, false)
	}
	if p, ok := fs["noMatch"]; ok {
		n.noMatch = l.policy(p, true)
	}
	if p, ok := fs["global"]; ok {
		n.global = l.globals(p, true)
	}
}

func (l *loader) branches(n *rawNode, fs map[string]pair) {
	p, ok := fs["branches"]
	if !ok {
		l.add(n.at, "menu %s has no branches", n.id)
		return
	}
	ps, ok := l.pairs(p.val, p.name)
	if !ok {
		return
	}
	if len(ps) == 0 {
		l.add(p.val, "menu %s has no branches", n.id)
	}

	seen := make(map[byte]bool, len(ps))
	for _, e := range ps {
		k, ok := l.key(e.key)
		if !ok {
			l.skip(e.val)
			continue
		}
		if seen[k] {
			l.add(e.key, "key %c used twice", k)
			continue
		}
		seen[k] = true
		e.name = "branch " + string(k)
		n.branches = append(n.branches, rawBranch{key: k, to: l.nodeRef(e)})
	}
}

// collect reads the rules of a collect node. Without minDigits a value
// needs one key; without maxDigits it is complete at max(minDigits, 1)
// keys, so `minDigits: 4` alone asks for exactly four.
func (l *loader) collect(n *rawNode, fs map[string]pair) {
	c := &n.collect
	l.digits(n, fs)

	c.keys = opt[string]{v: "0123456789"}
	if p, ok := fs["keys"]; ok {
		if s, ok := l.keySet(p); ok {
			c.keys = opt[string]{v: s, at: p.val}
		}
		if c.keys.v == "" {
			l.add(p.val, "keys is empty: a value needs at least one key")
		}
	}
	c.terminators = opt[string]{v: "#"}
	if p, ok := fs["terminators"]; ok {
		if s, ok := l.keySet(p); ok {
			c.terminators = opt[string]{v: s, at: p.val}
		}
	}
	l.overlap(c)

	if p, ok := fs["keepTerminator"]; ok {
		c.keepTerminator, _ = l.boolean(p)
	}
	c.termTimeout = l.optDuration(fs, "termTimeout", false)
	l.terminatorRules(c, fs)
	if p, ok := fs["pattern"]; ok {
		c.pattern = l.pattern(p)
	}
	if p, ok := fs["sensitive"]; ok {
		c.sensitive, _ = l.boolean(p)
	}

	if p, ok := fs["next"]; ok {
		c.next = l.nodeRef(p)
	} else {
		l.add(n.at, "collect %s has no next", n.id)
	}
}

func (l *loader) digits(n *rawNode, fs map[string]pair) {
	c := &n.collect
	c.minDigits.v = 1
	if p, ok := fs["minDigits"]; ok {
		if v, ok := l.integer(p); ok {
			c.minDigits = opt[int]{v: v, at: p.val}
		}
	}
	c.maxDigits.v = max(c.minDigits.v, 1)
	if p, ok := fs["maxDigits"]; ok {
		if v, ok := l.integer(p); ok {
			c.maxDigits = opt[int]{v: v, at: p.val}
		}
	}

	switch {
	case c.minDigits.v < 0:
		l.add(c.minDigits.at, "minDigits must not be negative")
	case c.maxDigits.v < 1:
		l.add(c.maxDigits.at, "maxDigits must be at least 1")
	case c.minDigits.v > c.maxDigits.v:
		l.add(c.minDigits.at, "minDigits %d is more than maxDigits %d", c.minDigits.v, c.maxDigits.v)
	}
}

// overlap reports keys that are both part of a value and a terminator:
// the node could not tell which the caller meant.
func (l *loader) overlap(c *rawCollect) {
	at := c.terminators.at
	if at == nil {
		at = c.keys.at
	}
	for i := 0; i < len(c.terminators.v); i++ {
		k := c.terminators.v[i]
		if strings.IndexByte(c.keys.v, k) >= 0 {
			l.add(at, "key %c is both in keys and in terminators", k)
		}
	}
}

// terminatorRules reads requireTerminator and clearKey and reports the
// combinations a caller could never complete or that would be ambiguous.
func (l *loader) terminatorRules(c *rawCollect, fs map[string]pair) {
	if p, ok := fs["requireTerminator"]; ok {
		if b, ok := l.boolean(p); ok {
			c.requireTerminator = opt[bool]{v: b, at: p.val}
		}
	}
	if r := c.requireTerminator; r.v {
		switch {
		case c.terminators.v == "":
			l.add(r.at, "requireTerminator needs a terminator key")
		case c.termTimeout.v > 0:
			l.add(c.termTimeout.at, "termTimeout has no effect with requireTerminator")
		}
	}

	p, ok := fs["clearKey"]
	if !ok {
		return
	}
	s, ok := l.str(p)
	switch {
	case !ok:
		return
	case len(s) != 1 || !ValidKey(s[0]):
		l.add(p.val, "clearKey %q is not a DTMF key (want 0-9, *, #, A-D)", s)
	case strings.IndexByte(c.terminators.v, s[0]) >= 0:
		l.add(p.val, "clearKey %c is also a terminator", s[0])
	case strings.IndexByte(c.keys.v, s[0]) >= 0:
		l.add(p.val, "clearKey %c is also in keys", s[0])
	default:
		c.clearKey = opt[byte]{v: s[0], at: p.val}
	}
}

// pattern compiles a value pattern so that it must match the whole value.
func (l *loader) pattern(p pair) *regexp.Regexp {
	s, ok := l.str(p)
	if !ok {
		return nil
	}

	_, err := regexp.Compile(s)
	if err == nil {
		var re *regexp.Regexp
		re, err = regexp.Compile(`^(?:` + s + `)$`)
		if err == nil {
			return re
		}
	}
	var serr *syntax.Error
	if errors.As(err, &serr) {
		l.add(p.val, "pattern does not compile: %s: `%s`", serr.Code, serr.Expr)
	} else {
		l.add(p.val, "pattern does not compile: %v", err)
	}
	return nil
}

// variables reads the variables of an end node, in the order written.
func (l *loader) variables(n *rawNode, fs map[string]pair) {
	p, ok := fs["variables"]
	if !ok {
		l.add(n.at, "end node %s has no variables", n.id)
		return
	}
	ps, ok := l.pairs(p.val, p.name)
	if !ok {
		return
	}
	if len(ps) == 0 {
		l.add(p.val, "end node %s has no variables", n.id)
	}

	seen := make(map[string]bool, len(ps))
	for _, e := range ps {
		switch {
		case e.name == "":
			l.add(e.key, "variable name is empty")
			continue
		case seen[e.name]:
			l.add(e.key, "variable %s set twice", e.name)
			continue
		}
		seen[e.name] = true

		e.name = "variable " + e.name
		s, ok := l.str(e)
		if !ok {
			continue
		}
		t, err := parseTemplate(e.key.Value, s)
		if err != nil {
			l.add(e.val, "%s: %v", e.name, err)
			continue
		}
		n.variables = append(n.variables, rawVar{tmpl: t, at: e.val})
	}
}

// compiler turns a rawFlow into a Flow, reporting what only shows across
// nodes: references to unknown nodes, nodes no call can reach, and
// silence that never ends a call.
type compiler struct {
	*loader
	file *rawFlow
	flow *Flow
	raw  map[*Node]*rawNode

	timeout    time.Duration
	interDigit time.Duration
	noInput    Policy
	noMatch    Policy
	global     map[byte]GlobalKey

	// silent is where silence leads from each node that leaves on it, and
	// where the file says so.
	silent   map[*Node]*Node
	silentAt map[*Node]*yaml.Node
}

func (l *loader) compile(raw *rawFlow, opts Options) *Flow {
	c := &compiler{
		loader:   l,
		file:     raw,
		flow:     &Flow{Name: l.file, Nodes: make(map[string]*Node, len(raw.nodes))},
		raw:      make(map[*Node]*rawNode, len(raw.nodes)),
		silent:   make(map[*Node]*Node),
		silentAt: make(map[*Node]*yaml.Node),
	}
	for _, rn := range raw.nodes {
		n := &Node{ID: rn.id, Kind: rn.kind}
		c.flow.Nodes[rn.id] = n
		c.flow.Order = append(c.flow.Order, rn.id)
		c.raw[n] = rn
	}
	c.flow.Start = c.lookup(raw.start)

	c.defaults(raw, opts)
	for _, id := range c.flow.Order {
		c.node(c.flow.Nodes[id])
	}

	c.reach()
	c.loops()
	return c.flow
}

// lookup resolves a reference, reporting an unknown node.
func (c *compiler) lookup(r ref) *Node {
	if r.at == nil {
		return nil
	}
	n := c.flow.Nodes[r.id]
	if n == nil {
		c.add(r.at, "unknown node %q", r.id)
	}
	return n
}

// defaults compiles what nodes take when they do not say: the timeout
// from the file, else from opts, else 10s; the inter-digit timeout from
// the file, else the node's own timeout.
func (c *compiler) defaults(raw *rawFlow, opts Options) {
	d := raw.defaults
	c.timeout = cmp.Or(d.timeout.v, max(opts.DefaultTimeout, 0), defaultTimeout)
	c.interDigit = d.interDigit.v
	c.noInput = c.policy(d.noInput)
	c.noMatch = c.policy(d.noMatch)

	c.global = make(map[byte]GlobalKey, len(raw.global))
	for _, g := range raw.global {
		c.global[g.key] = c.globalKey(g)
	}
}

func (c *compiler) policy(p *rawPolicy) Policy {
	if p == nil {
		return Policy{}
	}

	pol := Policy{Ignore: p.ignore, Fallback: c.lookup(p.fallback)}
	for _, s := range p.steps {
		pol.Steps = append(pol.Steps, Step{Prompt: s.prompt, Goto: c.lookup(s.to)})
	}
	return pol
}

func (c *compiler) globalKey(g rawGlobal) GlobalKey {
	return GlobalKey{Goto: c.lookup(g.to), Back: g.back, Preempt: g.preempt}
}

// node fills in n from its raw form and the defaults. An end node takes
// no keys, so it gets no timeouts, policies or global keys.
func (c *compiler) node(n *Node) {
	rn := c.raw[n]
	n.Prompt = rn.prompt
	n.PromptDuration = rn.promptDuration
	n.BargeIn = rn.bargeIn.v || !rn.bargeIn.set()
	n.Flush = rn.flush

	switch n.Kind {
	case KindMenu:
		c.input(n, rn)
		n.Branches = make(map[byte]*Node, len(rn.branches))
		for _, b := range rn.branches {
			n.Branches[b.key] = c.lookup(b.to)
		}
	case KindCollect:
		c.input(n, rn)
		n.Collect = c.collect(rn)
	case KindEnd:
		c.variables(n, rn)
	}
}

// input fills in the timeouts, policies and global keys of a node that
// waits for keys.
func (c *compiler) input(n *Node, rn *rawNode) {
	n.Timeout = cmp.Or(rn.timeout.v, c.timeout)
	n.InterDigit = cmp.Or(rn.interDigit.v, c.interDigit, n.Timeout)

	n.NoInput = c.noInput
	silence := c.file.defaults.noInput
	if rn.noInput != nil {
		n.NoInput = c.policy(rn.noInput)
		silence = rn.noInput
	}
	n.NoMatch = c.noMatch
	if rn.noMatch != nil {
		n.NoMatch = c.policy(rn.noMatch)
	}
	c.silence(n, silence)

	n.Global = c.nodeGlobals(rn)
}

// silence records where silence at n leads in the end: the first step
// that leaves, else the fallback. A policy that does neither retries for
// ever, which is no loop.
func (c *compiler) silence(n *Node, p *rawPolicy) {
	if p == nil {
		return
	}
	r := p.fallback
	for _, s := range p.steps {
		if s.to.at != nil {
			r = s.to
			break
		}
	}

	if t := c.flow.Nodes[r.id]; r.at != nil && t != nil {
		c.silent[n] = t
		c.silentAt[n] = r.at
	}
}

// nodeGlobals applies a node's overrides to the flow's global keys.
func (c *compiler) nodeGlobals(rn *rawNode) map[byte]GlobalKey {
	gs := maps.Clone(c.global)
	for _, g := range rn.global {
		switch {
		case !g.off && !g.preempt && rawUses(rn, g.key):
			c.add(g.at, "global key %c can never fire at %s, which uses %c itself; "+
				"set preempt: true to make it win", g.key, rn.id, g.key)
		case !g.off:
			gs[g.key] = c.globalKey(g)
		case c.global[g.key] == GlobalKey{}:
			c.add(g.at, "global key %c is off here, but the flow has no global key %c", g.key, g.key)
		default:
			delete(gs, g.key)
		}
	}

	if len(gs) == 0 {
		return nil
	}
	return gs
}

// rawUses reports whether node rn gives key a meaning of its own, as
// uses does for a compiled node.
func rawUses(rn *rawNode, key byte) bool {
	switch rn.kind {
	case KindMenu:
		return slices.ContainsFunc(rn.branches, func(b rawBranch) bool { return b.key == key })
	case KindCollect:
		c := rn.collect
		return strings.IndexByte(c.keys.v, key) >= 0 ||
			strings.IndexByte(c.terminators.v, key) >= 0 ||
			c.clearKey.set() && c.clearKey.v == key
	}
	return false
}

func (c *compiler) collect(rn *rawNode) *Collect {
	r := rn.collect
	return &Collect{
		MinDigits:         r.minDigits.v,
		MaxDigits:         r.maxDigits.v,
		Keys:              r.keys.v,
		Terminators:       r.terminators.v,
		KeepTerminator:    r.keepTerminator,
		RequireTerminator: r.requireTerminator.v,
		ClearKey:          r.clearKey.v,
		TermTimeout:       r.termTimeout.v,
		Pattern:           r.pattern,
		Sensitive:         r.sensitive,
		Next:              c.lookup(r.next),
	}
}

// variables compiles an end node's variables, checking that each
// ${value.X} names a collect node and each ${key.X} a menu.
func (c *compiler) variables(n *Node, rn *rawNode) {
	for _, v := range rn.variables {
		for _, p := range v.tmpl.parts {
			switch p.ref {
			case refValue:
				c.refKind(v, "value", p.arg, KindCollect)
			case refKey:
				c.refKind(v, "key", p.arg, KindMenu)
			}
		}
		n.Variables = append(n.Variables, v.tmpl)
	}
}

func (c *compiler) refKind(v rawVar, ref, id string, want Kind) {
	t := c.flow.Nodes[id]
	switch {
	case t == nil:
		c.add(v.at, "variable %s: ${%s.%s}: unknown node %q", v.tmpl.Name, ref, id, id)
	case t.Kind != want && t.Kind != 0:
		c.add(v.at, "variable %s: ${%s.%s} needs %s %s node, %s is %s %s node",
			v.tmpl.Name, ref, id, article(want), want, id, article(t.Kind), t.Kind)
	}
}

// successors lists the nodes a call can go to from n, by any key,
// value, escalation or global key.
func successors(n *Node) []*Node {
	var next []*Node
	for i := 0; i < len(Keys); i++ {
		next = append(next, n.Branches[Keys[i]])
	}
	if n.Collect != nil {
		next = append(next, n.Collect.Next)
	}
	for _, p := range []Policy{n.NoInput, n.NoMatch} {
		for _, s := range p.Steps {
			next = append(next, s.Goto)
		}
		next = append(next, p.Fallback)
	}
	for i := 0; i < len(Keys); i++ {
		next = append(next, n.Global[Keys[i]].Goto)
	}
	return slices.DeleteFunc(next, func(n *Node) bool { return n == nil })
}

// reach reports the nodes no call can reach from the start. A node named
// in a part of the file that could not be read counts as reached: the
// part may lead to it. Without a known start, or when the file was too
// large to read in full, reachability is unknown and goes unchecked.
func (c *compiler) reach() {
	if c.flow.Start == nil || c.unsure {
		return
	}

	seen := map[*Node]bool{c.flow.Start: true}
	queue := []*Node{c.flow.Start}
	for _, id := range c.flow.Order {
		if n := c.flow.Nodes[id]; c.maybe[id] && !seen[n] {
			seen[n] = true
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, s := range successors(n) {
			if !seen[s] {
				seen[s] = true
				queue = append(queue, s)
			}
		}
	}

	for _, id := range c.flow.Order {
		n := c.flow.Nodes[id]
		switch {
		case seen[n]:
		case n.Kind == KindEnd:
			c.add(c.raw[n].at, "end node %s has no way in", id)
		default:
			c.add(c.raw[n].at, "node %s cannot be reached from start", id)
		}
	}
}

// loops reports silence that goes round nodes for ever: a caller who
// never presses a key must reach an end node, or stay at one node.
// No-match fallbacks are not followed: each turn round such a loop is a
// wrong key the caller pressed, and a key the node takes ends it.
func (c *compiler) loops() {
	const (
		unseen = iota
		onPath
		done
	)
	state := make(map[*Node]int, len(c.flow.Nodes))

	for _, id := range c.flow.Order {
		var path []*Node
		n := c.flow.Nodes[id]
		for n != nil && state[n] == unseen {
			state[n] = onPath
			path = append(path, n)
			n = c.silent[n]
		}
		if n != nil && state[n] == onPath {
			c.loop(path[slices.Index(path, n):])
		}
		for _, p := range path {
			state[p] = done
		}
	}
}

// loop reports one silence loop, starting from its node defined first.
func (c *compiler) loop(cycle []*Node) {
	first := 0
	for i, n := range cycle {
		if c.raw[n].index < c.raw[cycle[first]].index {
			first = i
		}
	}
	cycle = slices.Concat(cycle[first:], cycle[:first])

	ids := make([]string, 0, len(cycle)+1)
	for _, n := range cycle {
		ids = append(ids, n.ID)
	}
	ids = append(ids, cycle[0].ID)
	c.add(c.silentAt[cycle[0]], "silence loops through %s and never ends the call",
		strings.Join(ids, " -> "))
}
