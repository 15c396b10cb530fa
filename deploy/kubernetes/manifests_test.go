package kubernetes

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/types"
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

// TestKustomizationsBuild builds every kustomization under this directory
// with kustomize's own library, as "kubectl apply -k" would, and decodes
// each object it makes strictly, so a patch that leaves a misspelt or
// misplaced field in an overlay fails here too.
func TestKustomizationsBuild(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)

	for _, dir := range []string{".", baseDir, clusterDir, monitoringDir} {
		if _, ok := m.builds[dir]; !ok {
			t.Errorf("no kustomization found in %s", dir)
		}
	}
	if got, want := objectIDs(m.builds["."]), objectIDs(m.builds[baseDir]); !slices.Equal(got, want) {
		t.Errorf("kubectl apply -k deploy/kubernetes applies %v, want the base's %v", got, want)
	}
	for _, dir := range slices.Sorted(maps.Keys(m.builds)) {
		t.Run(dir, func(t *testing.T) {
			objs := m.builds[dir]
			if len(objs) == 0 {
				t.Fatalf("kustomize %s builds nothing", dir)
			}
			if slices.ContainsFunc(objs, isSecret) {
				t.Errorf("kustomize %s builds a Secret: applying it would overwrite real credentials",
					dir)
			}
		})
	}
}

// TestKustomizeRejectsMistakes makes sure the build above fails on the
// mistakes kubectl would reject: a kustomization that includes itself, a
// misspelt kustomization field, and a patch of an object that is not there.
func TestKustomizeRejectsMistakes(t *testing.T) {
	t.Parallel()
	base, err := filepath.Abs(baseDir)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{
			name: "overlay inside its base",
			files: map[string]string{
				"kustomization.yaml":         "resources: [overlay]\n",
				"overlay/kustomization.yaml": "resources: [../]\n",
			},
			wantErr: "cycle detected",
		},
		{
			name:    "misspelt field",
			files:   map[string]string{"kustomization.yaml": "resource: [x.yaml]\n"},
			wantErr: `unknown field "resource"`,
		},
		{
			name: "patch of a missing object",
			files: map[string]string{
				"kustomization.yaml": "resources: [base]\npatches: [{path: p.yaml}]\n",
				"p.yaml":             "apiVersion: v1\nkind: Service\nmetadata: {name: nobody}\n",
			},
			wantErr: "no matches for Id Service",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.Symlink(base, filepath.Join(dir, "base")); err != nil {
				t.Fatal(err)
			}
			for name, body := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			_, err := kustomize(dir)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("kustomize: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestKustomization checks that "kubectl apply -k" applies every manifest
// of the base except the Secret template, and that the IVR ConfigMap keeps
// its name.
func TestKustomization(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)

	var want []string
	for file, objs := range m.files {
		if filepath.Dir(file) != baseDir || slices.ContainsFunc(objs, isSecret) {
			continue
		}
		want = append(want, filepath.Base(file))
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(m.kustomizations[baseDir].Resources))
	if !slices.Equal(got, want) {
		t.Errorf("%s/kustomization.yaml resources = %v, want every manifest but the Secret: %v",
			baseDir, got, want)
	}
	mon := m.kustomizations[monitoringDir].Resources
	if !slices.Equal(mon, []string{"servicemonitor.yaml"}) {
		t.Errorf("%s/kustomization.yaml resources = %v, want [servicemonitor.yaml]",
			monitoringDir, mon)
	}

	vol, _ := m.volumeAt(t, m.env(t, "DTMFD_IVR"))
	if vol.ConfigMap == nil {
		t.Fatalf("DTMFD_IVR is on volume %s, want a ConfigMap volume", vol.Name)
	}
	if !slices.ContainsFunc(m.kustomizations[baseDir].ConfigMapGenerator,
		func(g types.ConfigMapArgs) bool { return g.Name == vol.ConfigMap.Name }) {
		t.Errorf("ConfigMap %s gets a hash suffix: every IVR edit would restart dtmfd",
			vol.ConfigMap.Name)
	}
	for _, dir := range []string{baseDir, monitoringDir} {
		for _, o := range m.builds[dir] {
			if l := objectLabels(o); l["app.kubernetes.io/name"] != "dtmfd" {
				t.Errorf("%s builds %T without the label app.kubernetes.io/name: dtmfd", dir, o)
			}
		}
	}
}

// objectIDs names each decoded object as Kind/name, sorted.
func objectIDs(objs []any) []string {
	ids := make([]string, 0, len(objs))
	for _, o := range objs {
		kind := fmt.Sprintf("%T", o)
		name := ""
		if obj, ok := o.(metav1.Object); ok {
			name = obj.GetName()
		}
		ids = append(ids, kind+"/"+name)
	}
	slices.Sort(ids)
	return ids
}

// objectLabels returns the labels of a decoded object.
func objectLabels(o any) map[string]string {
	if obj, ok := o.(metav1.Object); ok {
		return obj.GetLabels()
	}
	return nil
}

func isSecret(o any) bool {
	_, ok := o.(*corev1.Secret)
	return ok
}

// TestClusterOverlay checks the Deployment the cluster overlay builds:
// the patch adds what a Proto.Actor cluster needs on Kubernetes and keeps
// everything the base promises.
func TestClusterOverlay(t *testing.T) {
	t.Parallel()
	m := mustManifests(t)
	d := m.deployments()[clusterDir]
	if d == nil {
		t.Fatalf("%s builds no Deployment", clusterDir)
	}
	c := container(t, d)
	pod := d.Spec.Template.Spec
	port, err := strconv.Atoi(env(t, d, "DTMFD_CLUSTER_PORT"))
	if err != nil {
		t.Fatalf("DTMFD_CLUSTER_PORT: %v", err)
	}
	host := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "DTMFD_CLUSTER_HOST" && e.ValueFrom != nil &&
			e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	})

	tests := []struct {
		name      string
		got, want any
	}{
		{"replicas", deref(d.Spec.Replicas), int32(3)},
		{"strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"token mounted for the pod watch", deref(pod.AutomountServiceAccountToken), true},
		{"DTMFD_CLUSTER", env(t, d, "DTMFD_CLUSTER"), "kubernetes"},
		{"cluster port is a container port", containerPortOf(t, c, "cluster"), int32(port)},
		{"host advertises the pod IP", host >= 0, true},
		{"base env kept", env(t, d, "DTMFD_IVR"), m.env(t, "DTMFD_IVR")},
		{"base probes kept", probePath(c.ReadinessProbe), "/readyz"},
		{"base securityContext kept", deref(c.SecurityContext.ReadOnlyRootFilesystem), true},
		{"base volumes kept", len(pod.Volumes), len(m.deployment.Spec.Template.Spec.Volumes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}

	t.Run("RBAC", func(t *testing.T) {
		checkClusterRBAC(t, m.builds[clusterDir], pod.ServiceAccountName)
	})
}

// checkClusterRBAC checks that the objects grant the service account what
// the Proto.Actor Kubernetes provider does with pods.
func checkClusterRBAC(t *testing.T, objs []any, account string) {
	t.Helper()
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	for _, o := range objs {
		switch o := o.(type) {
		case *rbacv1.Role:
			role = o
		case *rbacv1.RoleBinding:
			binding = o
		}
	}
	if role == nil || binding == nil {
		t.Fatal("no Role and RoleBinding")
	}

	want := []string{"get", "list", "patch", "watch"}
	ok := slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "pods") &&
			slices.Equal(slices.Sorted(slices.Values(r.Verbs)), want)
	})
	if !ok {
		t.Errorf("Role %s does not allow %v on pods", role.Name, want)
	}
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 ||
		binding.Subjects[0].Name != account {
		t.Errorf("RoleBinding binds %s to %v, want Role %s to ServiceAccount %s",
			binding.RoleRef.Name, binding.Subjects, role.Name, account)
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
	return containerPortOf(t, m.container(t), name)
}

func containerPortOf(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
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
		vol, _ := m.volumeAt(t, path)
		if vol.ConfigMap == nil {
			t.Fatalf("DTMFD_IVR is on volume %s, want a ConfigMap volume", vol.Name)
		}
		cm := m.configMap(t, baseDir, vol.ConfigMap.Name)
		if _, ok := cm.Data[filepath.Base(path)]; !ok {
			t.Errorf("DTMFD_IVR file %s is not a key of ConfigMap %s",
				filepath.Base(path), cm.Name)
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
