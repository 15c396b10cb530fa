package variables

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestEncodeVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vars []Variable
		want string
	}{
		{"none", []Variable{}, `[]`},
		{"the example tree's decision",
			[]Variable{{"ivr_selection", `["2","A","1"]`}, {"ivr_status", "completed"}},
			`[{"name":"ivr_selection","value":"[\"2\",\"A\",\"1\"]"},` +
				`{"name":"ivr_status","value":"completed"}]`},
		{"a backslash", []Variable{{"path", `a\b`}}, `[{"name":"path","value":"a\\b"}]`},
		{"an empty value", []Variable{{"account", ""}}, `[{"name":"account","value":""}]`},
		{"non-ASCII goes through encoding/json", []Variable{{"greeting", "grüß"}},
			`[{"name":"greeting","value":"grüß"}]`},
		{"HTML characters are escaped as encoding/json does", []Variable{{"note", "<a&b>"}},
			`[{"name":"note","value":"\u003ca\u0026b\u003e"}]`},
		{"a control byte", []Variable{{"note", "a\nb"}}, `[{"name":"note","value":"a\nb"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeVariables(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("encodeVariables = %s, want %s", got, tt.want)
			}
		})
	}
}

// FuzzEncodeVariables checks the hand-written encoding against
// encoding/json for any names and values.
func FuzzEncodeVariables(f *testing.F) {
	f.Add("ivr_selection", `["2","A","1"]`, "ivr_status", "completed")
	f.Add(`a\"b`, "\x00\x7f\xff", "<", "é")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		vars := []Variable{{n1, v1}, {n2, v2}}
		want, err := json.Marshal(vars)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeVariables(vars)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("encodeVariables(%q) = %s, json.Marshal gives %s", vars, got, want)
		}
	})
}

// BenchmarkEncodeVariables compares the encoding of the example tree's
// decision with encoding/json's.
func BenchmarkEncodeVariables(b *testing.B) {
	vars := []Variable{{"ivr_selection", `["2","A","1"]`}, {"ivr_status", "completed"}}
	for _, bb := range []struct {
		name   string
		encode func([]Variable) ([]byte, error)
	}{
		{"by hand", encodeVariables},
		{"encoding/json", func(v []Variable) ([]byte, error) { return json.Marshal(v) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bb.encode(vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
