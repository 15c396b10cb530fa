package ivrspec

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Options configures how a flow file is loaded.
type Options struct {
	// DefaultTimeout is the first-digit timeout of every node when the
	// file sets no defaults.timeout. Zero means 10s.
	DefaultTimeout time.Duration
}

// defaultTimeout is the first-digit timeout when neither the file nor the
// Options set one: Asterisk's default, and the contract's.
const defaultTimeout = 10 * time.Second

// maxYAMLNodes bounds the work of walking one file. Aliases let a small
// file name the same mapping many times over; past this many nodes the
// file is refused rather than expanded.
const maxYAMLNodes = 1 << 20

// LoadFile reads and validates the flow definition at path. Problems
// are reported with path as the file name.
func LoadFile(path string, opts Options) (*Flow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read flow: %w", err)
	}
	return Parse(path, data, opts)
}

// Parse validates a flow definition in YAML or JSON and compiles it.
// name is the file name used in problems and as Flow.Name. Every problem
// found is reported at once, in a *LoadError, so a file can be fixed in
// one pass.
func Parse(name string, data []byte, opts Options) (*Flow, error) {
	l := &loader{file: name, budget: maxYAMLNodes}

	var f *Flow
	if raw := l.decode(data); raw != nil {
		f = l.compile(raw, opts)
	}
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	return f, nil
}

// Problem is one thing wrong with a flow file, at the position of the
// YAML node that shows it.
type Problem struct {
	File         string
	Line, Column int
	Msg          string
}

// String formats p as compilers do, "file:line:col: msg", so editors can
// jump to it.
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Msg)
}

// LoadError lists every problem of a flow file that failed to load,
// sorted by position.
type LoadError struct {
	Problems []Problem
}

// Error returns every problem, one per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// loader gathers the problems of one file while it is decoded and
// compiled.
type loader struct {
	file     string
	problems []Problem
	// budget is how many more YAML nodes may be walked.
	budget int
	// maybe holds every word found in parts of the file that could not
	// be read: any of them may name a node, so reachability counts
	// such nodes as reached rather than report them.
	maybe map[string]bool
	// unsure is set when the file was too large to read in full.
	// Reachability is then unknown and goes unchecked.
	unsure bool
}

// skip notes the words in n, a part of the file that could not be read,
// as possible node references. Each YAML node is visited once, so an
// alias costs nothing more.
func (l *loader) skip(n *yaml.Node) {
	if l.maybe == nil {
		l.maybe = make(map[string]bool)
	}
	seen := make(map[*yaml.Node]bool)
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if n.Kind == yaml.ScalarNode {
			l.maybe[n.Value] = true
		}
		walk(n.Alias)
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
}

func (l *loader) addAt(line, col int, format string, args ...any) {
	l.problems = append(l.problems, Problem{
		File:   l.file,
		Line:   line,
		Column: col,
		Msg:    fmt.Sprintf(format, args...),
	})
}

func (l *loader) add(n *yaml.Node, format string, args ...any) {
	l.addAt(n.Line, n.Column, format, args...)
}

// err sorts the problems by position, then text, and drops repeats,
// which aliases cause by showing one node under several names.
func (l *loader) err() *LoadError {
	slices.SortFunc(l.problems, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			strings.Compare(a.Msg, b.Msg),
		)
	})
	return &LoadError{Problems: slices.Compact(l.problems)}
}

// yamlLine matches the line number yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// syntax reports a YAML syntax error. The parser gives a line but no
// column, so the column is 1.
func (l *loader) syntax(err error) {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			line = n
		}
		msg = msg[len(m[0]):]
	}
	l.addAt(line, 1, "invalid YAML: %s", msg)
}

// document parses data as exactly one YAML document.
func (l *loader) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.addAt(1, 1, "file is empty")
		} else {
			l.syntax(err)
		}
		return nil
	}

	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		l.add(&extra, "only one YAML document is allowed")
	case !errors.Is(err, io.EOF):
		l.syntax(err)
	}

	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		l.add(&doc, "file holds no flow")
		return nil
	}
	return doc.Content[0]
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// spend takes k nodes from the budget, reporting at n when it runs out.
func (l *loader) spend(n *yaml.Node, k int) bool {
	if l.budget < 0 {
		return false
	}
	l.budget -= k
	if l.budget < 0 {
		l.add(n, "file is too large: over %d YAML nodes, counting each alias in full", maxYAMLNodes)
		return false
	}
	return true
}

// describe names what n holds, for messages about wrong types.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return strconv.Quote(n.Value)
}

// pair is one key and value of a mapping. The key is a scalar and name
// is its text.
type pair struct {
	name     string
	key, val *yaml.Node
}

// pairs returns the entries of mapping n, whose value is field what.
func (l *loader) pairs(n *yaml.Node, what string) ([]pair, bool) {
	if n.Kind != yaml.MappingNode {
		l.add(n, "%s must be a mapping, got %s", what, describe(n))
		l.skip(n)
		return nil, false
	}
	if !l.spend(n, len(n.Content)) {
		l.unsure = true
		return nil, false
	}

	ps := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		switch {
		case k.Tag == "!!merge":
			l.add(k, "merge keys (<<) are not supported")
			continue
		case k.Kind != yaml.ScalarNode:
			l.add(k, "%s: a key must be a plain value, got %s", what, describe(k))
			continue
		}
		ps = append(ps, pair{name: k.Value, key: k, val: v})
	}
	return ps, true
}

// fields returns the fields of mapping n by name, reporting fields that
// known does not list and fields given twice.
func (l *loader) fields(n *yaml.Node, what string, known func(string) bool) (
	map[string]pair, bool,
) {
	ps, ok := l.pairs(n, what)
	if !ok {
		return nil, false
	}

	fs := make(map[string]pair, len(ps))
	for _, p := range ps {
		switch _, dup := fs[p.name]; {
		case !known(p.name):
			l.add(p.key, "unknown field %q", p.name)
		case dup:
			l.add(p.key, "field %q set twice", p.name)
		default:
			fs[p.name] = p
		}
	}
	return fs, true
}

// sequence returns the items of list n, whose value is field what.
func (l *loader) sequence(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	if n.Kind != yaml.SequenceNode {
		l.add(n, "%s must be a list, got %s", what, describe(n))
		l.skip(n)
		return nil, false
	}
	if !l.spend(n, len(n.Content)) {
		l.unsure = true
		return nil, false
	}

	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items, true
}

// str returns the text of a scalar field. Numbers are taken as written,
// so `prompt: 123` names prompt "123".
func (l *loader) str(p pair) (string, bool) {
	if p.val.Kind != yaml.ScalarNode || p.val.Tag == "!!null" {
		l.add(p.val, "%s must be a string, got %s", p.name, describe(p.val))
		return "", false
	}
	return p.val.Value, true
}

func (l *loader) boolean(p pair) (bool, bool) {
	var b bool
	if p.val.Kind != yaml.ScalarNode || p.val.Tag != "!!bool" || p.val.Decode(&b) != nil {
		l.add(p.val, "%s must be true or false, got %s", p.name, describe(p.val))
		return false, false
	}
	return b, true
}

func (l *loader) integer(p pair) (int, bool) {
	var i int
	if p.val.Kind != yaml.ScalarNode || p.val.Tag != "!!int" || p.val.Decode(&i) != nil {
		l.add(p.val, "%s must be an integer, got %s", p.name, describe(p.val))
		return 0, false
	}
	return i, true
}

// duration parses a Go duration such as 2s or 1m30s. A timeout must be
// positive: a zero one would fire before the caller could press a key.
func (l *loader) duration(p pair, timeout bool) (time.Duration, bool) {
	var d time.Duration
	var err error
	if p.val.Kind == yaml.ScalarNode && p.val.Tag != "!!null" {
		d, err = time.ParseDuration(p.val.Value)
	}
	switch {
	case p.val.Kind != yaml.ScalarNode || p.val.Tag == "!!null" || err != nil:
		l.add(p.val, "%s must be a duration such as 5s, got %s", p.name, describe(p.val))
		return 0, false
	case d < 0:
		l.add(p.val, "%s must not be negative", p.name)
		return 0, false
	case d == 0 && timeout:
		l.add(p.val, "%s must be more than zero", p.name)
		return 0, false
	}
	return d, true
}

// key parses the text of a mapping key naming one DTMF key.
func (l *loader) key(k *yaml.Node) (byte, bool) {
	if len(k.Value) != 1 || !ValidKey(k.Value[0]) {
		l.add(k, "%s is not a DTMF key (want 0-9, *, #, A-D)", describe(k))
		return 0, false
	}
	return k.Value[0], true
}

// keySet parses a field listing DTMF keys, such as keys or terminators.
func (l *loader) keySet(p pair) (string, bool) {
	s, ok := l.str(p)
	if !ok {
		return "", false
	}

	for i := 0; i < len(s); i++ {
		switch {
		case !ValidKey(s[i]):
			l.add(p.val, "%s: %q is not a DTMF key (want 0-9, *, #, A-D)", p.name, s[i:i+1])
			return "", false
		case strings.IndexByte(s[:i], s[i]) >= 0:
			l.add(p.val, "%s: key %c used twice", p.name, s[i])
			return "", false
		}
	}
	return s, true
}

// opt is a field that may be absent; at is its value's node when set.
type opt[T any] struct {
	v  T
	at *yaml.Node
}

func (o opt[T]) set() bool { return o.at != nil }

// ref names a node. at is nil when the field is absent.
type ref struct {
	id string
	at *yaml.Node
}

// nodeRef reads a field naming a node.
func (l *loader) nodeRef(p pair) ref {
	id, ok := l.str(p)
	if !ok {
		l.skip(p.val)
		return ref{}
	}
	return ref{id: id, at: p.val}
}

// known returns a field filter accepting names.
func known(names ...string) func(string) bool {
	return func(s string) bool { return slices.Contains(names, s) }
}

// rawFlow is a flow file as written, with the YAML node of every value
// kept for problems found later.
type rawFlow struct {
	start    ref
	defaults rawDefaults
	global   []rawGlobal
	nodes    []*rawNode
}

type rawDefaults struct {
	timeout, interDigit opt[time.Duration]
	noInput, noMatch    *rawPolicy
}

// rawPolicy is a noInput or noMatch policy.
type rawPolicy struct {
	ignore   bool
	steps    []rawStep
	fallback ref
}

type rawStep struct {
	prompt string
	to     ref
}

// rawGlobal is a global key, or a node's override of one.
type rawGlobal struct {
	key     byte
	at      *yaml.Node
	off     bool
	to      ref
	back    bool
	preempt bool
}

// decode parses data into a rawFlow, reporting every problem that can be
// seen without looking across nodes.
func (l *loader) decode(data []byte) *rawFlow {
	root := l.document(data)
	if root == nil {
		return nil
	}
	root = resolve(root)

	top := known("version", "start", "defaults", "global", "nodes")
	fs, ok := l.fields(root, "flow", top)
	if !ok {
		return nil
	}

	raw := &rawFlow{}
	l.version(root, fs)
	if p, ok := fs["start"]; ok {
		raw.start = l.nodeRef(p)
	} else {
		l.add(root, "start is missing")
	}
	if p, ok := fs["defaults"]; ok {
		raw.defaults = l.defaults(p)
	}
	if p, ok := fs["global"]; ok {
		raw.global = l.globals(p, false)
	}
	if p, ok := fs["nodes"]; ok {
		raw.nodes = l.nodes(p)
	} else {
		l.add(root, "nodes is missing")
	}
	return raw
}

// version checks that the file is in the one format this package reads.
func (l *loader) version(root *yaml.Node, fs map[string]pair) {
	p, ok := fs["version"]
	if !ok {
		l.add(root, "version is missing")
		return
	}
	if v, ok := l.integer(p); ok && v != 1 {
		l.add(p.val, "version must be 1, got %d", v)
	}
}

func (l *loader) defaults(p pair) rawDefaults {
	var d rawDefaults
	fs, ok := l.fields(p.val, p.name, known("timeout", "interDigitTimeout", "noInput", "noMatch"))
	if !ok {
		return d
	}

	d.timeout = l.optDuration(fs, "timeout", true)
	d.interDigit = l.optDuration(fs, "interDigitTimeout", true)
	if p, ok := fs["noInput"]; ok {
		d.noInput = l.policy(p, false)
	}
	if p, ok := fs["noMatch"]; ok {
		d.noMatch = l.policy(p, true)
	}
	return d
}

func (l *loader) optDuration(fs map[string]pair, name string, timeout bool) opt[time.Duration] {
	p, ok := fs[name]
	if !ok {
		return opt[time.Duration]{}
	}
	d, ok := l.duration(p, timeout)
	if !ok {
		return opt[time.Duration]{}
	}
	return opt[time.Duration]{v: d, at: p.val}
}

// policy reads a noInput (noMatch false) or noMatch policy.
func (l *loader) policy(p pair, noMatch bool) *rawPolicy {
	fs, ok := l.fields(p.val, p.name, known("ignore", "steps", "fallback"))
	if !ok {
		return nil
	}

	pol := &rawPolicy{}
	if f, ok := fs["ignore"]; ok {
		pol.ignore, _ = l.boolean(f)
		if pol.ignore && !noMatch {
			l.add(f.key, "ignore applies only to noMatch")
		}
	}
	if f, ok := fs["steps"]; ok {
		pol.steps = l.steps(f)
	}
	if f, ok := fs["fallback"]; ok {
		pol.fallback = l.nodeRef(f)
	}

	if pol.ignore && noMatch && (len(pol.steps) > 0 || pol.fallback.at != nil) {
		l.add(fs["ignore"].key, "ignore discards wrong keys, so steps and fallback would never run")
	}
	return pol
}

func (l *loader) steps(p pair) []rawStep {
	items, ok := l.sequence(p.val, p.name)
	if !ok {
		return nil
	}

	steps := make([]rawStep, 0, len(items))
	for _, item := range items {
		fs, ok := l.fields(item, "a step", known("prompt", "goto"))
		if !ok {
			continue
		}
		var s rawStep
		if f, ok := fs["prompt"]; ok {
			s.prompt, _ = l.str(f)
		}
		if f, ok := fs["goto"]; ok {
			s.to = l.nodeRef(f)
		}
		steps = append(steps, s)
	}
	return steps
}

// globals reads the flow's global keys, or a node's overrides of them,
// where "off" or null turns a key off.
func (l *loader) globals(p pair, override bool) []rawGlobal {
	ps, ok := l.pairs(p.val, p.name)
	if !ok {
		return nil
	}

	var gs []rawGlobal
	seen := make(map[byte]bool)
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

		if g, ok := l.global(k, e, override); ok {
			gs = append(gs, g)
		} else {
			l.skip(e.val)
		}
	}
	return gs
}

func (l *loader) global(k byte, e pair, override bool) (rawGlobal, bool) {
	g := rawGlobal{key: k, at: e.key}
	if override && e.val.Kind == yaml.ScalarNode && (e.val.Tag == "!!null" || e.val.Value == "off") {
		g.off = true
		return g, true
	}
	if e.val.Kind != yaml.MappingNode {
		want := "a mapping"
		if override {
			want = `a mapping or "off"`
		}
		l.add(e.val, "global key %c must be %s, got %s", k, want, describe(e.val))
		return g, false
	}

	fs, ok := l.fields(e.val, "global key", known("goto", "back", "preempt"))
	if !ok {
		return g, false
	}
	if f, ok := fs["goto"]; ok {
		g.to = l.nodeRef(f)
	}
	if f, ok := fs["back"]; ok {
		g.back, _ = l.boolean(f)
	}
	if f, ok := fs["preempt"]; ok {
		g.preempt, _ = l.boolean(f)
	}

	_, hasGoto := fs["goto"]
	switch {
	case hasGoto && g.back:
		l.add(e.key, "global key %c has both goto and back", k)
		return g, false
	case !hasGoto && !g.back:
		l.add(e.key, "global key %c needs goto or back: true", k)
		return g, false
	}
	return g, true
}
