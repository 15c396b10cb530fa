package kubernetes

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// dockerStages parses deploy/Dockerfile.
func dockerStages(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(string(b))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

// goToolchain returns the Go that go.mod's toolchain line names, such as
// 1.27.3, or its go line's version without one.
func goToolchain(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^toolchain go(\d+\.\d+(?:\.\d+)?)\s*$`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// goRelease returns the major.minor of go.mod's toolchain, which names the
// golang image tag that follows that release's newest patch.
func goRelease(t *testing.T) string {
	t.Helper()
	v := strings.Split(goToolchain(t), ".")
	return v[0] + "." + v[1]
}

// buildRun returns the build stage's RUN of deploy/build.sh as argv,
// without the RUN flags such as --mount.
func buildRun(s stage) []string {
	for _, args := range s.find("RUN") {
		argv := slices.DeleteFunc(strings.Fields(args), func(f string) bool {
			return strings.HasPrefix(f, "--")
		})
		if len(argv) > 0 && argv[0] == "./deploy/build.sh" {
			return argv
		}
	}
	return nil
}

// TestDockerfile checks that the image is built by deploy/build.sh, with
// the Go of go.mod, and runs as the Deployment expects: a static binary
// on a distroless base, as the pod's non-root user, on the pod's port.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := dockerStages(t)
	build, final := stages[0], stages[len(stages)-1]
	m := mustManifests(t)

	run := buildRun(build)
	if len(run) != 2 {
		t.Fatalf("build stage runs deploy/build.sh as %q, want ./deploy/build.sh OUTPUT", run)
	}
	if build.name == "" {
		t.Fatal("build stage has no name to COPY --from")
	}
	psc := m.deployment.Spec.Template.Spec.SecurityContext
	user := fmt.Sprintf("%d:%d", deref(psc.RunAsUser), deref(psc.RunAsGroup))
	port := strconv.Itoa(int(containerPort(t, m, "http")))

	tests := []struct {
		name      string
		got, want string
	}{
		{"build image follows go.mod", build.from, "golang:" + goRelease(t) + "-bookworm"},
		{"binary copied from the build", strings.Join(final.find("COPY"), "; "),
			"--from=" + build.name + " " + run[1] + " " + entrypoint(t)},
		{"user is the pod's", strings.Join(final.find("USER"), "; "), user},
		{"port is the container's", strings.Join(final.find("EXPOSE"), "; "), port},
		{"container keeps the image's entrypoint", strings.Join(m.container(t).Command, " "), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}

	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final image %s, want distroless static or scratch", final.from)
	}
	if deref(psc.RunAsUser) == 0 {
		t.Error("runAsUser is 0: the image and the pod would run as root")
	}
}

// TestToolchainFollowsGoMod checks that everything that runs the go command
// for dtmfd asks for the Go of go.mod's toolchain line. A go command
// configured with GOTOOLCHAIN=local, as on the project's machines, keeps
// to the installed Go instead of fetching that one, so CI, the build
// script, the Taskfile and the README's first commands each name it.
func TestToolchainFollowsGoMod(t *testing.T) {
	t.Parallel()
	want := "go" + goToolchain(t)
	pin := regexp.MustCompile(`GOTOOLCHAIN(?:=|:-|:\s+)(go\d+(?:\.\d+)*)`)

	for _, file := range []string{".ci/run", "deploy/build.sh", "Taskfile.yml", "README.md"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join(repoRoot, file))
			if err != nil {
				t.Fatal(err)
			}

			pins := pin.FindAllSubmatch(b, -1)
			if len(pins) == 0 {
				t.Fatalf("%s sets no GOTOOLCHAIN, want %s", file, want)
			}
			for _, m := range pins {
				if got := string(m[1]); got != want {
					t.Errorf("%s sets GOTOOLCHAIN=%s, want %s as go.mod's toolchain line says", file, got, want)
				}
			}
		})
	}
}

// TestCIRunsTheREADMETestCommand checks that CI runs the test suite
// exactly as the README tells a newcomer to, and the Taskfile's test task
// too, so that a suite that passes for one passes for the others.
func TestCIRunsTheREADMETestCommand(t *testing.T) {
	t.Parallel()
	read := func(file string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme := regexp.MustCompile(`(?m)^GOTOOLCHAIN=\S+ (go test [^#\n]*?)\s+# run the whole test suite$`).
		FindStringSubmatch(read("README.md"))
	if readme == nil {
		t.Fatal("README.md's first lines have no go test command marked as the whole test suite")
	}
	want := readme[1]

	for file, line := range map[string]*regexp.Regexp{
		".ci/run":      regexp.MustCompile(`(?m)^(go test .*)$`),
		"Taskfile.yml": regexp.MustCompile(`(?m)^\s+- (go test -race.*)$`),
	} {
		got := line.FindAllStringSubmatch(read(file), -1)
		var cmds []string
		for _, m := range got {
			cmds = append(cmds, m[1])
		}
		if !slices.Contains(cmds, want) {
			t.Errorf("%s runs %q, want the README's %q", file, cmds, want)
		}
	}
}

// TestBuildScriptBuildsStaticBinary runs deploy/build.sh from outside the
// repository and checks the binary runs on a distroless base: statically
// linked, stripped, and stamped with VERSION.
func TestBuildScriptBuildsStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dtmfd; skipped under -short")
	}
	t.Parallel()
	dir := t.TempDir()

	err := runBuildScript(filepath.Join("out", "dtmfd"), dir, []string{"VERSION=v0.0.0-test"})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "out", "dtmfd")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("open %s relative to the caller's directory: %v", bin, err)
	}
	defer f.Close()

	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %s program header: it needs a dynamic loader", p.Type)
		}
	}
	for _, name := range []string{".dynamic", ".interp", ".symtab"} {
		if f.Section(name) != nil {
			t.Errorf("binary has a %s section", name)
		}
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("dtmfd version: %v", err)
	}
	if !strings.HasPrefix(string(out), "dtmfd v0.0.0-test") {
		t.Errorf("dtmfd version printed %q, want it to start with dtmfd v0.0.0-test", out)
	}
}

// FuzzParseDockerfile checks that any input parses into instructions of
// one upper-case word, with continuations joined.
func FuzzParseDockerfile(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "Dockerfile")); err == nil {
		f.Add(string(b))
	}
	f.Add("FROM a AS b\nRUN x \\\n  y\n# c\nUSER 1:1\n")

	f.Fuzz(func(t *testing.T, src string) {
		for _, s := range parseDockerfile(src) {
			for _, in := range s.instrs {
				oneWord := in.cmd != "" && !strings.ContainsFunc(in.cmd, unicode.IsSpace)
				if !oneWord || in.cmd != strings.ToUpper(in.cmd) {
					t.Errorf("instruction %q is not one upper-case word", in.cmd)
				}
				if strings.ContainsAny(in.args, "\n") {
					t.Errorf("arguments %q span lines", in.args)
				}
			}
		}
	})
}

// FuzzParseSettings checks that only well-formed variable names are read
// from a usage text.
func FuzzParseSettings(f *testing.F) {
	f.Add("Settings:\n  -addr  DTMFD_ADDR  :8080  HTTP listen address\n")
	f.Add("  -x  lower  -  usage\n  -  EMPTY\n")

	valid := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	f.Fuzz(func(t *testing.T, usage string) {
		for env := range parseSettings(usage) {
			if !valid.MatchString(env) {
				t.Errorf("parsed %q as a variable name", env)
			}
		}
	})
}

// entrypoint is the binary the image runs.
func entrypoint(t *testing.T) string {
	t.Helper()
	final := dockerStages(t)
	args := final[len(final)-1].find("ENTRYPOINT")
	if len(args) != 1 {
		t.Fatalf("final stage has %d ENTRYPOINTs, want 1", len(args))
	}
	argv, err := execForm(args[0])
	if err != nil {
		t.Fatalf("ENTRYPOINT: %v", err)
	}
	if len(argv) == 0 {
		t.Fatal("ENTRYPOINT is empty")
	}
	return argv[0]
}
