package kubernetes

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// TestEnvironmentIsKnownToDtmfd checks every variable each kustomization's
// Deployment sets against the settings "dtmfd -h" lists, so a renamed or
// misspelt one does not silently do nothing.
func TestEnvironmentIsKnownToDtmfd(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	bin := dtmfdBinary(t)

	var stderr strings.Builder
	cmd := exec.Command(bin, "-h")
	cmd.Stderr = &stderr
	if err := cmd.Run(); exitCode(err) != 2 {
		t.Fatalf("dtmfd -h: %v, want exit status 2", err)
	}
	known := parseSettings(stderr.String())
	if !known["DTMFD_ADDR"] {
		t.Fatalf("dtmfd -h lists no DTMFD_ADDR; cannot read its settings from:\n%s",
			stderr.String())
	}

	for dir, d := range m.deployments() {
		for _, e := range container(t, d).Env {
			t.Run(dir+"/"+e.Name, func(t *testing.T) {
				if !known[e.Name] {
					t.Errorf("dtmfd has no setting %s", e.Name)
				}
			})
		}
	}

	_, port, err := net.SplitHostPort(m.env(t, "DTMFD_ADDR"))
	if err != nil || port != strconv.Itoa(int(containerPort(t, m, "http"))) {
		t.Errorf("DTMFD_ADDR port %q is not the container port http", port)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestFlowPassesCheck validates, with dtmfd itself, the IVR flow each
// kustomization's Deployment is given.
func TestFlowPassesCheck(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	bin := dtmfdBinary(t)

	for dir, d := range m.deployments() {
		t.Run(dir, func(t *testing.T) {
			flow := filepath.Join(t.TempDir(), "flow")
			writeConfigMaps(t, m, dir, d, map[string]string{filepath.Dir(ivrPath(t, d)): flow})

			file := filepath.Join(flow, filepath.Base(ivrPath(t, d)))
			out, err := exec.Command(bin, "ivr", "check", file).CombinedOutput()
			if err != nil {
				t.Fatalf("dtmfd ivr check of %s's flow: %v\n%s", dir, err, out)
			}
		})
	}
}

// ivrPath returns DTMFD_IVR of d's container.
func ivrPath(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	return env(t, d, "DTMFD_IVR")
}

// writeConfigMaps writes the data of each ConfigMap that d mounts at a key
// of dirs into the local directory it maps to, as the kubelet would.
func writeConfigMaps(t *testing.T, m *manifests, dir string, d *appsv1.Deployment,
	dirs map[string]string) {
	t.Helper()
	for mount, local := range dirs {
		vol, _ := volumeAt(t, d, filepath.Join(mount, "x"))
		if vol.ConfigMap == nil {
			t.Fatalf("%s is not a ConfigMap volume", mount)
		}
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		for key, value := range m.configMap(t, dir, vol.ConfigMap.Name).Data {
			if err := os.WriteFile(filepath.Join(local, key), []byte(value), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestShutdownFitsGracePeriod checks that the kubelet waits for the
// preStop sleep and dtmfd's own drain before it kills the process, and
// that the preStop command runs.
func TestShutdownFitsGracePeriod(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	c := m.container(t)

	grace, err := time.ParseDuration(m.env(t, "DTMFD_SHUTDOWN_GRACE"))
	if err != nil {
		t.Fatalf("DTMFD_SHUTDOWN_GRACE: %v", err)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no preStop exec hook")
	}
	argv := c.Lifecycle.PreStop.Exec.Command
	if len(argv) != 3 || argv[1] != "sleep" {
		t.Fatalf("preStop command %q, want [dtmfd sleep DURATION]", argv)
	}
	pause, err := time.ParseDuration(argv[2])
	if err != nil {
		t.Fatalf("preStop sleep: %v", err)
	}

	seconds := deref(m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds)
	period := time.Duration(seconds) * time.Second
	if period <= grace+pause {
		t.Errorf("terminationGracePeriodSeconds %s, want more than shutdown grace %s + preStop %s",
			period, grace, pause)
	}
	if argv[0] != entrypoint(t) {
		t.Errorf("preStop runs %s, but the image's binary is %s", argv[0], entrypoint(t))
	}

	bin := dtmfdBinary(t)
	if out, err := exec.Command(bin, "sleep", "1ms").CombinedOutput(); err != nil {
		t.Errorf("dtmfd sleep 1ms: %v\n%s", err, out)
	}
}

// TestProbesServed runs dtmfd with the Deployment's environment, the
// mounted paths mapped to local files and without credentials (local
// mode), and checks every probe and the metrics path answer 200 once it is
// ready, then that SIGTERM stops it cleanly.
func TestProbesServed(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	bin := dtmfdBinary(t)
	addr := freeAddr(t)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(localEnv(t, m), "DTMFD_ADDR="+addr)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("dtmfd output:\n%s", logs.String())
		}
	}()

	base := "http://" + addr
	c := m.container(t)
	waitReady(ctx, t, base+probePath(c.ReadinessProbe))
	for _, path := range []string{
		probePath(c.StartupProbe),
		probePath(c.LivenessProbe),
		probePath(c.ReadinessProbe),
		m.serviceMonitor.Spec.Endpoints[0].Path,
	} {
		if code := get(ctx, t, base+path); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, code)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("dtmfd after SIGTERM: %v, want exit status 0", err)
	}
}

// localEnv is the base Deployment's plain environment with each mount path
// replaced by a local directory, ConfigMaps written out, and the
// credentials left out.
func localEnv(t *testing.T, m *manifests) []string {
	t.Helper()
	dirs := map[string]string{}
	configMaps := map[string]string{}
	for _, vm := range m.container(t).VolumeMounts {
		vol, _ := m.volumeAt(t, filepath.Join(vm.MountPath, "x"))
		switch {
		case vol.ConfigMap != nil:
			dirs[vm.MountPath] = t.TempDir()
			configMaps[vm.MountPath] = dirs[vm.MountPath]
		case vol.EmptyDir != nil:
			dirs[vm.MountPath] = t.TempDir()
		}
	}
	writeConfigMaps(t, m, baseDir, m.deployment, configMaps)

	vars := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range m.container(t).Env {
		if e.ValueFrom != nil || e.Name == "CXONE_CLIENT_SECRET_FILE" {
			continue
		}
		v := e.Value
		if dir, ok := dirs[filepath.Dir(v)]; ok {
			v = filepath.Join(dir, filepath.Base(v))
		}
		vars = append(vars, e.Name+"="+v)
	}
	return vars
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitReady polls url until it answers 200, for up to ten seconds.
func waitReady(ctx context.Context, t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if get(ctx, t, url) == http.StatusOK {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not 200 within 10s", url)
		case <-tick.C:
		}
	}
}

// get returns the status code of GET url, or 0 when it fails.
func get(ctx context.Context, t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
