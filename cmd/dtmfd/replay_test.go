package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/transport/deadletter"
	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// deadRecord is a dead letter as the service records one.
func deadRecord(id, status string) deadletter.Record {
	return deadletter.Record{
		InteractionID: id,
		Variables:     []variables.Variable{{Name: "ivr_status", Value: status}},
		DecidedAt:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		FailedAt:      time.Date(2026, 1, 2, 3, 6, 5, 0, time.UTC),
		Attempts:      7,
		Status:        http.StatusServiceUnavailable,
		Error:         "write variables: status 503",
	}
}

// writeDeadLetters writes recs, then extra raw lines, to a new file.
func writeDeadLetters(t *testing.T, recs []deadletter.Record, extra ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	f, err := deadletter.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := f.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 {
		raw, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw.WriteString(strings.Join(extra, "\n") + "\n")
		raw.Close()
	}
	return path
}

// startEmulator runs a bare emulator for the replay tests.
func startEmulator(t *testing.T) *emulator.Emulator {
	t.Helper()
	emu := emulator.New(emulator.Options{ClientID: testID, ClientSecret: testSecret})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

func platformEnv(emu *emulator.Emulator) func(string) string {
	return env("CXONE_CLIENT_ID", testID, "CXONE_CLIENT_SECRET", testSecret,
		"CXONE_BASE_URL", emu.URL(), "DTMFD_WRITE_DEADLINE", "20s")
}

func TestReplayDeliversAndKeepsWhatStillFails(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	emu.FailWrites(2, http.StatusServiceUnavailable, nil)
	emu.RejectInteraction("gone", http.StatusBadRequest)
	file := writeDeadLetters(t, []deadletter.Record{
		deadRecord("a", "completed"), deadRecord("gone", "completed"),
		deadRecord("b", "timeout_fallback"), deadRecord("c", "operator"),
	})

	var out, errOut bytes.Buffer
	code := run([]string{"deadletter", "replay", file}, &out, &errOut, platformEnv(emu))
	if code != 1 {
		t.Errorf("exit %d, want 1: one record still fails\nstdout: %s\nstderr: %s", code, &out, &errOut)
	}

	got := map[string]string{}
	for _, w := range emu.Writes() {
		got[w.InteractionID] += w.Variables[0].Value
	}
	want := map[string]string{"a": "completed", "b": "timeout_fallback", "c": "operator"}
	if len(got) != len(want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("%s delivered %q, want %q once", id, got[id], v)
		}
	}

	failed := readDeadLetters(t, file+".failed")
	if len(failed) != 1 || failed[0].InteractionID != "gone" || failed[0].Status != http.StatusBadRequest ||
		failed[0].Attempts <= 7 || failed[0].Variables[0].Value != "completed" {
		t.Errorf("still failing = %+v, want gone with status 400, its attempts counted on from 7", failed)
	}
	summary := []string{"4 records, 3 delivered, 1 failed", "failed gone", "status 400", file + ".failed"}
	for _, s := range summary {
		if !strings.Contains(out.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, &out)
		}
	}
	if all := out.String() + errOut.String(); strings.Contains(all, testSecret) {
		t.Errorf("the client secret was printed:\n%s", all)
	}
}

func TestReplayCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    func(file, dir, base string) []string
		extra   []string // raw lines after the records
		local   bool     // no credentials
		stale   bool     // a .failed file from an earlier run exists
		code    int
		stderr  string
		written int // writes the platform accepted
	}{
		{name: "all delivered", stale: true,
			args: func(f, _, _ string) []string { return []string{"replay", f} }, code: 0, written: 2},
		{name: "-out names the file for failures", extra: nil,
			args: func(f, d, _ string) []string {
				return []string{"replay", "-out", filepath.Join(d, "again.jsonl"), f}
			}, code: 0, written: 2},
		{name: "settings given as flags", local: true,
			args: func(f, _, base string) []string {
				return []string{"replay", "-client-id", testID, "-client-secret", testSecret, "-base-url", base, f}
			}, code: 0, written: 2},
		{name: "a bad setting",
			args: func(f, _, _ string) []string { return []string{"replay", "-writers", "0", f} },
			code: 2, stderr: "DTMFD_WRITERS"},
		{name: "malformed lines are named and the rest delivered", extra: []string{"not json"},
			args: func(f, _, _ string) []string { return []string{"replay", f} }, code: 1,
			stderr: "malformed line 3", written: 2},
		{name: "local mode has nothing to replay to", local: true,
			args: func(f, _, _ string) []string { return []string{"replay", f} }, code: 2,
			stderr: "no platform credentials"},
		{name: "missing file",
			args: func(_, d, _ string) []string { return []string{"replay", filepath.Join(d, "none.jsonl")} },
			code: 1, stderr: "no such file"},
		{name: "no file", args: func(string, string, string) []string { return []string{"replay"} },
			code: 2, stderr: "usage"},
		{name: "unknown subcommand", args: func(f, _, _ string) []string { return []string{"purge", f} },
			code: 2, stderr: "usage"},
		{name: "-out without a value", args: func(f, _, _ string) []string { return []string{"replay", "-out"} },
			code: 2, stderr: "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emu := startEmulator(t)
			file := writeDeadLetters(t, []deadletter.Record{deadRecord("a", "completed"),
				deadRecord("b", "operator")}, tt.extra...)
			if tt.stale {
				os.WriteFile(file+".failed", []byte("{}\n"), 0o600)
			}
			getenv := platformEnv(emu)
			if tt.local {
				getenv = env()
			}

			var out, errOut bytes.Buffer
			code := deadletterCommand(tt.args(file, filepath.Dir(file), emu.URL()), &out, &errOut, getenv)
			if code != tt.code || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q\nstdout: %s", code, &errOut, tt.code, tt.stderr, &out)
			}
			if n := len(emu.Writes()); n != tt.written {
				t.Errorf("%d writes, want %d", n, tt.written)
			}
			if _, err := os.Stat(file + ".failed"); tt.code == 0 && !os.IsNotExist(err) {
				t.Errorf("a .failed file is left after every record was delivered: %v", err)
			}
		})
	}
}

func TestReplayFailuresGoToOut(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	emu.RejectInteraction("b", http.StatusNotFound)
	file := writeDeadLetters(t, []deadletter.Record{deadRecord("a", "completed"), deadRecord("b", "operator")})
	out := filepath.Join(t.TempDir(), "again.jsonl")

	var stdout, stderr bytes.Buffer
	code := deadletterCommand([]string{"replay", "-out=" + out, file}, &stdout, &stderr, platformEnv(emu))
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, &stdout, &stderr)
	}
	if recs := readDeadLetters(t, out); len(recs) != 1 || recs[0].InteractionID != "b" {
		t.Errorf("-out holds %+v, want b's record", recs)
	}
	if _, err := os.Stat(file + ".failed"); !os.IsNotExist(err) {
		t.Errorf("FILE.failed written although -out was given: %v", err)
	}

	// The file of failures is a dead-letter file: it can be replayed in
	// turn once the platform takes the write.
	emu2 := startEmulator(t)
	if code := deadletterCommand([]string{"replay", out}, &stdout, &stderr, platformEnv(emu2)); code != 0 {
		t.Fatalf("replaying the failures: exit %d\n%s%s", code, &stdout, &stderr)
	}
	if ws := emu2.Writes(); len(ws) != 1 || ws[0].InteractionID != "b" {
		t.Errorf("second replay wrote %+v, want b", ws)
	}
}

func FuzzCutOutFlag(f *testing.F) {
	f.Add("-out\x00x.jsonl\x00-writers\x004")
	f.Add("--out=x\x00-base-url\x00http://h")
	f.Add("-out")
	f.Add("-outfile\x00y")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		out, rest, err := cutOutFlag(args)
		if err != nil {
			return
		}
		// rest keeps the other arguments, in order.
		i := 0
		for _, a := range args {
			if i < len(rest) && rest[i] == a {
				i++
			}
		}
		if i != len(rest) {
			t.Fatalf("cutOutFlag(%q) rest = %q: not a subsequence", args, rest)
		}
		named := slices.ContainsFunc(args, func(a string) bool {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			return strings.HasPrefix(a, "-") && name == "out"
		})
		if !named && (out != "" || len(rest) != len(args)) {
			t.Fatalf("cutOutFlag(%q) = %q, %q without an -out flag", args, out, rest)
		}
	})
}
