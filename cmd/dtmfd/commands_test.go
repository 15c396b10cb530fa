package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIVRCommands(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nstart: nowhere\nnodes:\n  a: {type: menu, branches: {\"1\": b, \"X\": a}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"check a good file", []string{"ivr", "check", "../../ivrspec/examples/bank.yaml"}, 0, "bank.yaml: ok", ""},
		{"check lists every problem with its position", []string{"ivr", "check", bad}, 1, "", "bad.yaml:2:8"},
		{"graph draws a Mermaid flowchart", []string{"ivr", "graph", "../../ivrspec/examples/contract.yaml"}, 0, "flowchart TD", ""},
		{"missing file", []string{"ivr", "check", "/nonexistent.yaml"}, 1, "", "nonexistent.yaml"},
		{"usage", []string{"ivr", "draw"}, 2, "", "usage"},
		{"version", []string{"version"}, 0, "dtmfd dev", ""},
		{"sleep", []string{"sleep", "1ms"}, 0, "", ""},
		{"sleep needs a duration", []string{"sleep", "soon"}, 2, "", "want a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut, env())
			if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errOut.String(), tt.code, tt.out, tt.err)
			}
		})
	}
	var errOut bytes.Buffer
	run([]string{"ivr", "check", bad}, &bytes.Buffer{}, &errOut, env())
	if n := strings.Count(errOut.String(), "bad.yaml:"); n < 3 {
		t.Errorf("check reported %d problems, want all of them at once:\n%s", n, errOut.String())
	}
}
