package kubernetes

import (
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestManifestsDecodeStrictly decodes every document of every manifest
// with Kubernetes' own types: a misspelt or misplaced field fails here
// instead of at kubectl apply.
func TestManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)

	for _, file := range slices.Sorted(maps.Keys(m.files)) {
		t.Run(file, func(t *testing.T) {
			if len(m.files[file]) == 0 {
				t.Errorf("%s holds no object", file)
			}
		})
	}
}

// TestStrictDecodingRejectsMistakes makes sure the decoding above is
// strict: each bad sample must fail, and the good one must pass.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{
			name: "valid deployment",
			doc: `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 1
`,
		},
		{
			name: "misspelt field",
			doc: `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replica: 1
`,
			wantErr: `unknown field "spec.replica"`,
		},
		{
			name: "field in the wrong case",
			doc: `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      containers:
        - name: x
          ports: [{containerport: 8080}]
`,
			wantErr: `unknown field "spec.template.spec.containers[0].ports[0].containerport"`,
		},
		{
			name: "field in the wrong place",
			doc: `apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ports: [{port: 8080}]
  targetPort: http
`,
			wantErr: `unknown field "spec.targetPort"`,
		},
		{
			name: "duplicate key",
			doc: `apiVersion: v1
kind: ServiceAccount
metadata: {name: x}
metadata: {name: y}
`,
			wantErr: `key "metadata" already set`,
		},
		{
			name: "misspelt ServiceMonitor field",
			doc: `apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec:
  endpoints: [{port: http, intervall: 30s}]
`,
			wantErr: `unknown field "spec.endpoints[0].intervall"`,
		},
		{
			name: "misspelt kustomization field",
			doc: `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resource: [deployment.yaml]
`,
			wantErr: `unknown field "resource"`,
		},
		{
			name: "unknown kind",
			doc: `apiVersion: v1
kind: Pod
metadata: {name: x}
`,
			wantErr: "no Go type for v1 Pod",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeDocument([]byte(tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("decode: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("decode succeeded, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("decode error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestKustomization checks that "kubectl apply -k" applies every manifest
// except the Secret template, and that the IVR ConfigMap keeps its name.
func TestKustomization(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)

	var want []string
	for file, objs := range m.files {
		if filepath.Dir(file) != "." || slices.ContainsFunc(objs, isSecret) {
			continue
		}
		want = append(want, file)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(m.base.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources = %v, want every manifest but the Secret: %v",
			got, want)
	}
	if !slices.Equal(m.monitoring.Resources, []string{"servicemonitor.yaml"}) {
		t.Errorf("monitoring/kustomization.yaml resources = %v, want [servicemonitor.yaml]",
			m.monitoring.Resources)
	}

	g := ivrGenerator(t, m)
	if !g.Options.DisableNameSuffixHash {
		t.Errorf("ConfigMap %s gets a hash suffix: every IVR edit would restart dtmfd", g.Name)
	}
	for dir, k := range map[string]*kustomization{".": m.base, "monitoring": m.monitoring} {
		if !hasLabel(k, "app.kubernetes.io/name", "dtmfd") {
			t.Errorf("%s/kustomization.yaml does not label app.kubernetes.io/name: dtmfd", dir)
		}
	}
}

func isSecret(o any) bool {
	_, ok := o.(*corev1.Secret)
	return ok
}

func hasLabel(k *kustomization, key, value string) bool {
	for _, l := range k.Labels {
		if l.Pairs[key] == value {
			return true
		}
	}
	return false
}

// ivrGenerator returns the ConfigMap generator the Deployment's IVR
// volume refers to.
func ivrGenerator(t *testing.T, m *manifests) configMapGenerator {
	t.Helper()
	vol, _ := m.volumeAt(t, m.env(t, "DTMFD_IVR"))
	if vol.ConfigMap == nil {
		t.Fatalf("DTMFD_IVR is on volume %s, want a ConfigMap volume", vol.Name)
	}
	for _, g := range m.base.ConfigMapGenerator {
		if g.Name == vol.ConfigMap.Name {
			return g
		}
	}
	t.Fatalf("no configMapGenerator makes ConfigMap %s", vol.ConfigMap.Name)
	return configMapGenerator{}
}

// TestKubectlKustomize builds both kustomizations with kubectl's own
// kustomize, when kubectl is installed.
func TestKubectlKustomize(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}

	tests := []struct {
		dir   string
		kinds []string
	}{
		{".", []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
			"ServiceAccount"}},
		{"monitoring", []string{"ServiceMonitor"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(kubectl, "kustomize", tt.dir).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", tt.dir, err)
			}
			for _, k := range tt.kinds {
				if !strings.Contains(string(out), "\nkind: "+k+"\n") {
					t.Errorf("kubectl kustomize %s has no %s", tt.dir, k)
				}
			}
			if strings.Contains(string(out), "kind: Secret\n") {
				t.Errorf("kubectl kustomize %s has a Secret: it would overwrite real credentials",
					tt.dir)
			}
		})
	}
}

// TestSelectors checks that the Service, the PodDisruptionBudget and the
// ServiceMonitor find what they are meant to, by label and port name.
func TestSelectors(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	pod := labels.Set(m.deployment.Spec.Template.Labels)
	svc := labels.Set(m.service.Labels)
	svcSelector := &metav1.LabelSelector{MatchLabels: m.service.Spec.Selector}

	tests := []struct {
		name     string
		selector *metav1.LabelSelector
		target   labels.Set
	}{
		{"Deployment selects its pods", m.deployment.Spec.Selector, pod},
		{"PodDisruptionBudget selects the pods", m.pdb.Spec.Selector, pod},
		{"Service selects the pods", svcSelector, pod},
		{"ServiceMonitor selects the Service", &m.serviceMonitor.Spec.Selector, svc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(tt.selector)
			if err != nil {
				t.Fatalf("selector: %v", err)
			}
			if sel.Empty() || !sel.Matches(tt.target) {
				t.Errorf("selector %q does not match labels %v", sel, tt.target)
			}
		})
	}

	t.Run("ports", func(t *testing.T) {
		port := containerPort(t, m, "http")
		target := servicePort(t, m, "http").TargetPort
		if target.String() != "http" && target.IntValue() != int(port) {
			t.Errorf("Service port http targets %s, want the container port http (%d)",
				target.String(), port)
		}
		for _, ep := range m.serviceMonitor.Spec.Endpoints {
			servicePort(t, m, ep.Port)
		}
	})
}

func containerPort(t *testing.T, m *manifests, name string) int32 {
	t.Helper()
	for _, p := range m.container(t).Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port named %s", name)
	return 0
}

func servicePort(t *testing.T, m *manifests, name string) corev1.ServicePort {
	t.Helper()
	for _, p := range m.service.Spec.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("Service has no port named %s", name)
	return corev1.ServicePort{}
}

// TestDeploymentSpec pins the settings an operator relies on: one replica,
// a locked-down container, the requests and probes as documented.
func TestDeploymentSpec(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	d := m.deployment
	pod := d.Spec.Template.Spec
	c := m.container(t)
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil || psc.SeccompProfile == nil || csc.Capabilities == nil {
		t.Fatal("pod or container securityContext is missing a part")
	}

	tests := []struct {
		name      string
		got, want any
	}{
		{"replicas", deref(d.Spec.Replicas), int32(1)},
		{"service account", pod.ServiceAccountName, m.serviceAccount.Name},
		{"token mounted", deref(m.serviceAccount.AutomountServiceAccountToken), false},
		{"runAsNonRoot", deref(psc.RunAsNonRoot), true},
		{"runAsUser", deref(psc.RunAsUser), int64(65532)},
		{"runAsGroup", deref(psc.RunAsGroup), int64(65532)},
		{"fsGroup", deref(psc.FSGroup), int64(65532)},
		{"seccompProfile", psc.SeccompProfile.Type, corev1.SeccompProfileTypeRuntimeDefault},
		{"readOnlyRootFilesystem", deref(csc.ReadOnlyRootFilesystem), true},
		{"allowPrivilegeEscalation", deref(csc.AllowPrivilegeEscalation), false},
		{"capabilities dropped", fmt.Sprint(csc.Capabilities.Drop), "[ALL]"},
		{"capabilities added", len(csc.Capabilities.Add), 0},
		{"cpu request", c.Resources.Requests.Cpu().String(), "250m"},
		{"memory request", c.Resources.Requests.Memory().String(), "256Mi"},
		{"memory limit", c.Resources.Limits.Memory().String(), "512Mi"},
		{"cpu limit", c.Resources.Limits.Cpu().IsZero(), true},
		{"liveness path", probePath(c.LivenessProbe), "/healthz"},
		{"liveness period", probePeriod(c.LivenessProbe), int32(10)},
		{"liveness failures", probeFailures(c.LivenessProbe), int32(3)},
		{"readiness path", probePath(c.ReadinessProbe), "/readyz"},
		{"readiness period", probePeriod(c.ReadinessProbe), int32(5)},
		{"startup path", probePath(c.StartupProbe), "/healthz"},
		{"pdb maxUnavailable", m.pdb.Spec.MaxUnavailable.String(), "1"},
		{"service type", m.service.Spec.Type, corev1.ServiceTypeClusterIP},
		{"metrics interval", m.serviceMonitor.Spec.Endpoints[0].Interval, "30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}

	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Error("a probe is missing or not an HTTP GET")
			continue
		}
		if p.HTTPGet.Port.String() != "http" {
			t.Errorf("probe on %s uses port %s, want the named port http",
				p.HTTPGet.Path, p.HTTPGet.Port.String())
		}
	}
	tmp, _ := m.volumeAt(t, "/tmp/x")
	if tmp.EmptyDir == nil || tmp.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("/tmp is not a memory-backed emptyDir")
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func probePath(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

func probePeriod(p *corev1.Probe) int32 {
	if p == nil {
		return 0
	}
	return p.PeriodSeconds
}

func probeFailures(p *corev1.Probe) int32 {
	if p == nil {
		return 0
	}
	return p.FailureThreshold
}

// TestMountedFiles checks that every file dtmfd is told to read is where
// a volume puts it, and every file it writes is on a writable volume: the
// root filesystem is read-only.
func TestMountedFiles(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)

	t.Run("DTMFD_IVR", func(t *testing.T) {
		path := m.env(t, "DTMFD_IVR")
		_, mount := m.volumeAt(t, path)
		if mount.SubPath != "" {
			t.Errorf("IVR volume mounted with subPath %s: ConfigMap updates would never reach it",
				mount.SubPath)
		}
		name := filepath.Base(path)
		if keys := ivrGenerator(t, m).keys(); !slices.Contains(keys, name) {
			t.Errorf("DTMFD_IVR file %s is not a key of the ConfigMap %v", name, keys)
		}
	})

	t.Run("CXONE_CLIENT_SECRET_FILE", func(t *testing.T) {
		path := m.env(t, "CXONE_CLIENT_SECRET_FILE")
		vol, _ := m.volumeAt(t, path)
		if vol.Secret == nil || vol.Secret.SecretName != m.secret.Name {
			t.Fatalf("%s is not on a volume of Secret %s", path, m.secret.Name)
		}
		item := slices.IndexFunc(vol.Secret.Items, func(k corev1.KeyToPath) bool {
			return k.Path == filepath.Base(path)
		})
		if item < 0 {
			t.Fatalf("no item of the Secret volume is written to %s", filepath.Base(path))
		}
		if _, ok := m.secret.StringData[vol.Secret.Items[item].Key]; !ok {
			t.Errorf("Secret template has no key %s", vol.Secret.Items[item].Key)
		}
		if mode := deref(vol.Secret.DefaultMode); mode != 0o400 {
			t.Errorf("secret file mode %#o, want 0400", mode)
		}
	})

	t.Run("secret references", func(t *testing.T) {
		for _, e := range m.container(t).Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := m.secret.StringData[ref.Key]; ref.Name != m.secret.Name || !ok {
				t.Errorf("%s refers to %s/%s, which the Secret template does not have",
					e.Name, ref.Name, ref.Key)
			}
		}
	})

	for _, env := range []string{"DTMFD_DEAD_LETTERS", "DTMFD_JOURNAL"} {
		t.Run(env, func(t *testing.T) {
			vol, mount := m.volumeAt(t, m.env(t, env))
			if mount.ReadOnly || vol.EmptyDir == nil && vol.PersistentVolumeClaim == nil {
				t.Errorf("%s is on volume %s, want a writable emptyDir or claim", env, vol.Name)
			}
		})
	}
}
