package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpSetting is one line of the settings "dtmfd -h" lists.
type helpSetting struct {
	flag, env, def, usage string
}

var helpLine = regexp.MustCompile(`^  -(\S+)\s+(\S+)\s+(\S+)\s+(.*)$`)

// helpSettings runs "dtmfd -h" and reads its settings, a line each:
// flag, variable, default ("-" for none) and what the setting does.
func helpSettings(t *testing.T) []helpSetting {
	t.Helper()
	var out bytes.Buffer
	if code := run([]string{"-h"}, &out, &out, env()); code != 2 {
		t.Fatalf("dtmfd -h exited %d, want 2", code)
	}
	_, list, ok := strings.Cut(out.String(), "Settings (flag, environment variable, default):\n")
	if !ok {
		t.Fatalf("dtmfd -h lists no settings:\n%s", out.String())
	}
	var settings []helpSetting
	for _, line := range strings.Split(strings.TrimRight(list, "\n"), "\n") {
		m := helpLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("dtmfd -h setting line %q is not flag, variable, default, usage", line)
		}
		settings = append(settings, helpSetting{flag: m[1], env: m[2], def: m[3], usage: m[4]})
	}
	return settings
}

// readmeRow is one row of a settings table of the README: the variables
// it names, the flags (nil when the table has no flag column) and its
// default cell.
type readmeRow struct {
	line  int
	envs  []string
	flags []string
	def   string
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	separator  = regexp.MustCompile(`^\|[\s:|-]+\|$`)
)

// settingsTables reads every table of markdown whose first column is the
// variable ("env" or "variable") and which has a default column. A cell
// may name two settings, "`CXONE_CLIENT_SECRET` / `_FILE`": a name that
// starts with "_" extends the one before it.
func settingsTables(markdown string) []readmeRow {
	var rows []readmeRow
	lines := strings.Split(markdown, "\n")
	for i := 0; i+1 < len(lines); i++ {
		header := tableCells(strings.ToLower(lines[i]))
		if len(header) == 0 || !separator.MatchString(strings.TrimSpace(lines[i+1])) ||
			(header[0] != "env" && header[0] != "variable") {
			continue
		}
		flagCol, defCol := slices.Index(header, "flag"), slices.Index(header, "default")
		if defCol < 0 {
			continue
		}
		for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
			cells := tableCells(lines[i])
			if len(cells) != len(header) {
				continue
			}
			row := readmeRow{line: i + 1, envs: names(cells[0]), def: cells[defCol]}
			if flagCol >= 0 {
				row.flags = names(cells[flagCol])
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// tableCells splits a markdown table line into its trimmed cells.
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if len(line) < 2 || !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	cells := strings.Split(line[1:len(line)-1], "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

// names returns the backticked names of a cell, a leading "_" extending
// the name before it.
func names(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		n := m[1]
		if strings.HasPrefix(n, "_") && len(out) > 0 {
			n = out[len(out)-1] + n
		}
		out = append(out, n)
	}
	return out
}

// settingMismatches compares the settings of dtmfd -h with the README's
// rows: each setting must have a row with its variable, its flag and its
// default, and each row must name a setting. fresh returns a flag set of
// every setting at its default, to read a default the README spells
// another way ("2m" for 2m0s).
func settingMismatches(help []helpSetting, rows []readmeRow, fresh func() *flag.FlagSet) []string {
	var bad []string
	byEnv := map[string]helpSetting{}
	for _, s := range help {
		byEnv[s.env] = s
	}
	documented := map[string]bool{}
	for _, r := range rows {
		for i, env := range r.envs {
			s, ok := byEnv[env]
			if !ok {
				bad = append(bad, fmt.Sprintf("README.md:%d: %s is no setting of dtmfd -h", r.line, env))
				continue
			}
			documented[env] = true
			switch {
			case r.flags == nil:
				bad = append(bad, fmt.Sprintf("README.md:%d: %s: the table has no flag column; want -%s",
					r.line, env, s.flag))
			case i >= len(r.flags) || r.flags[i] != "-"+s.flag:
				bad = append(bad, fmt.Sprintf("README.md:%d: %s: flag %v, want -%s",
					r.line, env, r.flags, s.flag))
			}
			if problem := defaultMismatch(s, r.def, fresh()); problem != "" {
				bad = append(bad, fmt.Sprintf("README.md:%d: %s: %s", r.line, env, problem))
			}
		}
	}
	for _, s := range help {
		if !documented[s.env] {
			bad = append(bad, fmt.Sprintf("README.md: no settings table lists %s (-%s, default %s)",
				s.env, s.flag, s.def))
		}
	}
	return bad
}

// defaultMismatch says what is wrong with cell as the README's default of
// s, or returns "". A setting with a default needs that value, in
// backticks, in any spelling its flag reads as the same value. A setting
// without one may leave the cell empty or say in words what happens
// instead; a value it quotes must be one its -h text names.
func defaultMismatch(s helpSetting, cell string, fs *flag.FlagSet) string {
	values := backticked.FindAllStringSubmatch(cell, -1)
	if s.def == "-" {
		for _, v := range values {
			if !strings.Contains(s.usage, v[1]) {
				return fmt.Sprintf("default %q, but the setting has none (dtmfd -h: %q)", cell, s.usage)
			}
		}
		return ""
	}
	if len(values) != 1 || strings.TrimSpace(cell) != values[0][0] {
		return fmt.Sprintf("default %q, want `%s`", cell, s.def)
	}
	f := fs.Lookup(s.flag)
	if err := f.Value.Set(values[0][1]); err != nil || f.Value.String() != f.DefValue {
		return fmt.Sprintf("default %q, want `%s`", cell, s.def)
	}
	return ""
}

// freshFlags returns a flag set of every setting at its default.
func freshFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("dtmfd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	new(config).bind(fs)
	return fs
}

// TestHelpMatchesTheBoundSettings checks that dtmfd -h lists every
// setting dtmfd reads, once, with the flag, variable and default it has.
func TestHelpMatchesTheBoundSettings(t *testing.T) {
	t.Parallel()
	help := helpSettings(t)
	fs := flag.NewFlagSet("dtmfd", flag.ContinueOnError)
	bound := new(config).bind(fs)
	if len(help) != len(bound) {
		t.Errorf("dtmfd -h lists %d settings, dtmfd reads %d", len(help), len(bound))
	}
	for i, s := range bound {
		if i >= len(help) {
			break
		}
		def := fs.Lookup(s.flag).DefValue
		if def == "" {
			def = "-"
		}
		want := helpSetting{flag: s.flag, env: s.env, def: def, usage: s.usage}
		if help[i] != want {
			t.Errorf("dtmfd -h lists %+v, want %+v", help[i], want)
		}
	}
}

// TestREADMEListsEverySetting reads the README's settings tables and
// dtmfd -h: every setting has a row with its variable, flag and default,
// and every row names a real setting.
func TestREADMEListsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := settingsTables(string(readme))
	if len(rows) == 0 {
		t.Fatal("README.md has no settings table")
	}
	for _, m := range settingMismatches(helpSettings(t), rows, freshFlags) {
		t.Error(m)
	}
}

// TestSettingMismatches feeds the README check tables with one fault
// each, so that each kind of mismatch is known to be found.
func TestSettingMismatches(t *testing.T) {
	t.Parallel()
	help := []helpSetting{
		{flag: "writers", env: "DTMFD_WRITERS", def: "64", usage: "writes in flight at once"},
		{flag: "write-deadline", env: "DTMFD_WRITE_DEADLINE", def: "2m0s", usage: "how long"},
		{flag: "base-url", env: "CXONE_BASE_URL", def: "-", usage: "API base URL (default https://{tenant}.cxone.com)"},
		{flag: "client-secret", env: "CXONE_CLIENT_SECRET", def: "-", usage: "secret"},
		{flag: "client-secret-file", env: "CXONE_CLIENT_SECRET_FILE", def: "-", usage: "file"},
	}
	const header = "| env | flag | default | meaning |\n|---|---|---|---|\n"
	const good = "| `DTMFD_WRITERS` | `-writers` | `64` | x |\n" +
		"| `DTMFD_WRITE_DEADLINE` | `-write-deadline` | `2m` | x |\n" +
		"| `CXONE_BASE_URL` | `-base-url` | `https://{tenant}.cxone.com` | x |\n" +
		"| `CXONE_CLIENT_SECRET` / `_FILE` | `-client-secret` / `-client-secret-file` | none | x |\n"
	tests := []struct {
		name     string
		markdown string
		want     []string
	}{
		{"all agree", header + good, nil},
		{"wrong default", header + strings.Replace(good, "`64`", "`32`", 1),
			[]string{"README.md:3: DTMFD_WRITERS: default \"`32`\", want `64`"}},
		{"default in words for a setting that has one", header + strings.Replace(good, "`2m`", "two minutes", 1),
			[]string{"README.md:4: DTMFD_WRITE_DEADLINE: default \"two minutes\", want `2m0s`"}},
		{"a default for a setting that has none", header + strings.Replace(good, "none", "`/etc/secret`", 1),
			[]string{
				`README.md:6: CXONE_CLIENT_SECRET: default "` + "`/etc/secret`" + `", but the setting has none (dtmfd -h: "secret")`,
				`README.md:6: CXONE_CLIENT_SECRET_FILE: default "` + "`/etc/secret`" + `", but the setting has none (dtmfd -h: "file")`,
			}},
		{"wrong flag", header + strings.Replace(good, "`-writers`", "`-writer`", 1),
			[]string{"README.md:3: DTMFD_WRITERS: flag [-writer], want -writers"}},
		{"no flag column", "| variable | default | meaning |\n| --- | --- | --- |\n" +
			"| `DTMFD_WRITERS` | `64` | x |\n",
			[]string{
				"README.md:3: DTMFD_WRITERS: the table has no flag column; want -writers",
				"README.md: no settings table lists DTMFD_WRITE_DEADLINE (-write-deadline, default 2m0s)",
				"README.md: no settings table lists CXONE_BASE_URL (-base-url, default -)",
				"README.md: no settings table lists CXONE_CLIENT_SECRET (-client-secret, default -)",
				"README.md: no settings table lists CXONE_CLIENT_SECRET_FILE (-client-secret-file, default -)",
			}},
		{"a row for no setting", header + good + "| `DTMFD_WRITTERS` | `-writters` | `64` | x |\n",
			[]string{"README.md:7: DTMFD_WRITTERS is no setting of dtmfd -h"}},
		{"a table of something else", "| limit | setting | default |\n|---|---|---|\n" +
			"| Open calls | `DTMFD_NOPE` | x |\n" + header + good, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := settingMismatches(help, settingsTables(tt.markdown), freshFlags)
			if !slices.Equal(got, tt.want) {
				t.Errorf("mismatches\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
