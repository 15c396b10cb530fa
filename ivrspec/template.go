package ivrspec

import (
	"encoding/json"
	"fmt"
	"strings"
)

// parseTemplate parses a variable's value. Text is kept as it is; these
// references are replaced when the call ends:
//
//	${path}        every key and value the caller entered, as a JSON array
//	${value.NODE}  the value collected at NODE
//	${key.NODE}    the key pressed at menu NODE
//	${callId}      the call id
//	${from}        the node the call was at when it ended
//	${reason}      how it ended: completed, no_input or no_match
//
// "$$" stands for a literal "$".
func parseTemplate(name, s string) (Template, error) {
	var parts []part
	var lit strings.Builder

	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			lit.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			return Template{}, fmt.Errorf("lone $ at offset %d: write $$ for a dollar sign", i)
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return Template{}, fmt.Errorf("unclosed ${ at offset %d", i)
		}
		p, err := parseRef(s[i+2 : i+end])
		if err != nil {
			return Template{}, err
		}
		if lit.Len() > 0 {
			parts = append(parts, part{lit: lit.String()})
			lit.Reset()
		}
		parts = append(parts, p)
		i += end
	}
	if lit.Len() > 0 || len(parts) == 0 {
		parts = append(parts, part{lit: lit.String()})
	}
	return Template{Name: name, parts: parts}, nil
}

func parseRef(ref string) (part, error) {
	switch ref {
	case "path":
		return part{ref: refPath}, nil
	case "callId":
		return part{ref: refCallID}, nil
	case "from":
		return part{ref: refFrom}, nil
	case "reason":
		return part{ref: refReason}, nil
	}
	kind, arg, ok := strings.Cut(ref, ".")
	if ok && arg != "" {
		switch kind {
		case "value":
			return part{ref: refValue, arg: arg}, nil
		case "key":
			return part{ref: refKey, arg: arg}, nil
		}
	}
	return part{}, fmt.Errorf("unknown reference ${%s}: want path, value.NODE, key.NODE, callId, from or reason", ref)
}

// Refs lists the nodes a template refers to, for validation.
func (t Template) Refs() []string {
	var ids []string
	for _, p := range t.parts {
		if p.ref == refValue || p.ref == refKey {
			ids = append(ids, p.arg)
		}
	}
	return ids
}

// ending is what a template is evaluated against.
type ending struct {
	callID string
	from   string
	reason string
	path   []PathEntry
}

// eval renders t, and says whether the result holds a sensitive value.
func (t Template) eval(e *ending) (string, bool) {
	if len(t.parts) == 1 && t.parts[0].ref == refNone {
		return t.parts[0].lit, false
	}

	var b strings.Builder
	sensitive := false
	for _, p := range t.parts {
		switch p.ref {
		case refNone:
			b.WriteString(p.lit)
		case refPath:
			b.WriteString(pathJSON(e.path))
		case refCallID:
			b.WriteString(e.callID)
		case refFrom:
			b.WriteString(e.from)
		case refReason:
			b.WriteString(e.reason)
		case refValue, refKey:
			if v, ok := lastInput(e.path, p.arg); ok {
				b.WriteString(v.Input)
				sensitive = sensitive || v.Sensitive
			}
		}
	}
	return b.String(), sensitive
}

// pathJSON renders the path as Go marshals a []string, with sensitive
// values masked: a secret reaches the platform only when a template names
// its node with ${value.NODE}.
func pathJSON(path []PathEntry) string {
	keys := make([]string, len(path))
	for i, p := range path {
		keys[i] = p.Masked()
	}
	b, _ := json.Marshal(keys)
	return string(b)
}

func lastInput(path []PathEntry, node string) (PathEntry, bool) {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i].Node == node {
			return path[i], true
		}
	}
	return PathEntry{}, false
}
