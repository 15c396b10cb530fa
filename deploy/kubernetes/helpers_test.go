package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// serviceMonitor is the part of the Prometheus operator's ServiceMonitor
// these manifests use; its Go type is not a dependency of dtmfd.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decodeStrict decodes one YAML document into v as the API server's strict
// field validation does: unknown and duplicate fields are errors and
// field names match case-sensitively.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return fmt.Errorf("convert yaml: %w", err)
	}

	strict, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	return errors.Join(strict...)
}

// newObject returns the typed object a document of that apiVersion and
// kind decodes into.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}, nil
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &types.Kustomization{}, nil
	case "kustomize.config.k8s.io/v1alpha1 Component":
		return &types.Kustomization{}, nil
	}
	return nil, fmt.Errorf("no Go type for %s %s", apiVersion, kind)
}

// decodeDocument picks the type from the document's apiVersion and kind,
// then decodes it strictly. A document of only comments decodes to nil.
func decodeDocument(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("read apiVersion and kind: %w", err)
	}
	if tm.APIVersion == "" && tm.Kind == "" && isEmptyDocument(doc) {
		return nil, nil
	}

	obj, err := newObject(tm.APIVersion, tm.Kind)
	if err != nil {
		return nil, err
	}
	if err := decodeStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return obj, nil
}

func isEmptyDocument(doc []byte) bool {
	j, err := yaml.YAMLToJSON(doc)
	return err == nil && string(j) == "null"
}

// decodeFile decodes every document of a YAML file.
func decodeFile(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}

	var objs []any
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split %s: %w", path, err)
		}

		obj, err := decodeDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", path, i+1, err)
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
}

// kustomize builds the kustomization in dir as "kubectl apply -k" does,
// with kustomize's own library and its default options, and decodes every
// object of the result strictly.
func kustomize(dir string) ([]any, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}

	var objs []any
	for _, r := range rm.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		obj, err := decodeDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// isKustomization reports whether a file name is one kustomize reads as
// the kustomization of its directory.
func isKustomization(name string) bool {
	return slices.Contains(konfig.RecognizedKustomizationFileNames(), name)
}

// kustomizationDirs walks this directory for kustomizations and returns
// their directories, relative to it, so a new overlay is built and checked
// without an edit here.
func kustomizationDirs() ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isKustomization(d.Name()) {
			return err
		}
		dirs = append(dirs, filepath.Dir(path))
		return nil
	})
	sort.Strings(dirs)
	return dirs, err
}

// manifests is every object of deploy/kubernetes: each kustomization as
// kustomize builds it, and each YAML file as written.
type manifests struct {
	// The objects of the base, as built, and the Secret template.
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	configMaps     []*corev1.ConfigMap
	secret         *corev1.Secret
	serviceMonitor *serviceMonitor

	// kustomizations maps each kustomization's directory to its file.
	kustomizations map[string]*types.Kustomization

	// builds maps each kustomization's directory to the objects kustomize
	// builds from it.
	builds map[string][]any

	// files maps each manifest file, relative to this directory, to its
	// objects. Kustomizations, the files their generators read and
	// their patches are not in it.
	files map[string][]any
}

// The directories of the base, the overlays, and the Secret template.
const (
	baseDir       = "base"
	clusterDir    = "cluster"
	monitoringDir = "monitoring"
	secretFile    = "base/secret.example.yaml"
)

// loadManifests builds every kustomization and decodes every manifest
// once.
var loadManifests = sync.OnceValues(func() (*manifests, error) {
	m := &manifests{
		kustomizations: map[string]*types.Kustomization{},
		builds:         map[string][]any{},
		files:          map[string][]any{},
	}
	dirs, err := kustomizationDirs()
	if err != nil {
		return nil, err
	}

	data := map[string]bool{}
	for _, dir := range dirs {
		if err := m.addKustomization(dir, data); err != nil {
			return nil, err
		}
	}
	if err := m.addFiles(data); err != nil {
		return nil, err
	}
	if err := m.fill(); err != nil {
		return nil, err
	}
	return m, m.complete()
})

// addKustomization decodes the kustomization of dir, builds it, and
// marks the files its generators read as data.
func (m *manifests) addKustomization(dir string, data map[string]bool) error {
	k, err := loadKustomization(dir)
	if err != nil {
		return err
	}
	m.kustomizations[dir] = k
	for p := range dataFiles(dir, k) {
		data[p] = true
	}

	objs, err := kustomize(dir)
	if err != nil {
		return err
	}
	m.builds[dir] = objs
	return nil
}

// addFiles decodes every YAML file under this directory but the
// kustomizations and the generators' data.
func (m *manifests) addFiles(data map[string]bool) error {
	return filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || isKustomization(d.Name()) || data[path] {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}

		objs, err := decodeFile(path)
		m.files[path] = objs
		return err
	})
}

// dataFiles returns the files kustomization k in dir reads as data or as
// patches. A patch is a fragment, not an object (a strategic merge patch
// may hold directives such as $patch), so it is checked through the
// object kustomize builds with it instead.
func dataFiles(dir string, k *types.Kustomization) map[string]bool {
	var sources []string
	for _, g := range k.ConfigMapGenerator {
		sources = append(sources, g.FileSources...)
	}
	for _, g := range k.SecretGenerator {
		sources = append(sources, g.FileSources...)
	}
	// The kustomizations use patches alone, not the fields it replaced
	// (patchesStrategicMerge, patchesJson6902), which kustomize
	// deprecates.
	for _, p := range k.Patches {
		sources = append(sources, p.Path)
	}

	data := map[string]bool{}
	for _, f := range sources {
		if _, p, ok := strings.Cut(f, "="); ok {
			f = p
		}
		if f != "" && !strings.Contains(f, "\n") {
			data[filepath.Join(dir, f)] = true
		}
	}
	return data
}

func loadKustomization(dir string) (*types.Kustomization, error) {
	var file string
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			file = filepath.Join(dir, name)
			break
		}
	}
	objs, err := decodeFile(file)
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("%s: want one document, got %d", file, len(objs))
	}
	k, ok := objs[0].(*types.Kustomization)
	if !ok {
		return nil, fmt.Errorf("%s: not a Kustomization", file)
	}
	return k, nil
}

// fill picks the base's objects from its build, the ServiceMonitor from
// the monitoring overlay's, and the Secret from its template.
func (m *manifests) fill() error {
	for _, o := range m.builds[baseDir] {
		switch o := o.(type) {
		case *appsv1.Deployment:
			m.deployment = o
		case *corev1.Service:
			m.service = o
		case *corev1.ServiceAccount:
			m.serviceAccount = o
		case *policyv1.PodDisruptionBudget:
			m.pdb = o
		case *corev1.ConfigMap:
			m.configMaps = append(m.configMaps, o)
		default:
			return fmt.Errorf("base: unexpected %T", o)
		}
	}
	for _, o := range m.builds[monitoringDir] {
		if sm, ok := o.(*serviceMonitor); ok {
			m.serviceMonitor = sm
		}
	}
	for _, o := range m.files[secretFile] {
		if s, ok := o.(*corev1.Secret); ok {
			m.secret = s
		}
	}
	return nil
}

func (m *manifests) complete() error {
	switch {
	case m.kustomizations[baseDir] == nil:
		return errors.New("no kustomization in " + baseDir)
	case m.kustomizations[monitoringDir] == nil:
		return errors.New("no kustomization in " + monitoringDir)
	case m.deployment == nil:
		return errors.New("no Deployment")
	case m.service == nil:
		return errors.New("no Service")
	case m.serviceAccount == nil:
		return errors.New("no ServiceAccount")
	case m.pdb == nil:
		return errors.New("no PodDisruptionBudget")
	case m.secret == nil:
		return errors.New("no Secret template")
	case m.serviceMonitor == nil:
		return errors.New("no ServiceMonitor")
	case len(m.serviceMonitor.Spec.Endpoints) == 0:
		return errors.New("ServiceMonitor has no endpoint")
	}
	return nil
}

// mustManifests returns the decoded manifests or ends the test.
func mustManifests(t *testing.T) *manifests {
	t.Helper()
	m, err := loadManifests()
	if err != nil {
		t.Fatalf("load manifests: %v", err)
	}
	return m
}

// deployments returns the Deployment of every kustomization that builds
// one, by directory.
func (m *manifests) deployments() map[string]*appsv1.Deployment {
	ds := map[string]*appsv1.Deployment{}
	for dir, objs := range m.builds {
		for _, o := range objs {
			if d, ok := o.(*appsv1.Deployment); ok {
				ds[dir] = d
			}
		}
	}
	return ds
}

// configMap returns the ConfigMap called name that the kustomization in
// dir builds.
func (m *manifests) configMap(t *testing.T, dir, name string) *corev1.ConfigMap {
	t.Helper()
	for _, o := range m.builds[dir] {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == name {
			return cm
		}
	}
	t.Fatalf("%s builds no ConfigMap %s", dir, name)
	return nil
}

// container returns the base Deployment's dtmfd container.
func (m *manifests) container(t *testing.T) *corev1.Container {
	t.Helper()
	return container(t, m.deployment)
}

// env returns the value of a plain environment variable of the base
// Deployment's container.
func (m *manifests) env(t *testing.T, name string) string {
	t.Helper()
	return env(t, m.deployment, name)
}

// volumeAt returns the base Deployment's volume mounted at the directory
// holding path, and its mount.
func (m *manifests) volumeAt(t *testing.T, path string) (*corev1.Volume, *corev1.VolumeMount) {
	t.Helper()
	return volumeAt(t, m.deployment, path)
}

// container returns the Deployment's dtmfd container.
func container(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(cs))
	}
	return &cs[0]
}

// env returns the value of a plain environment variable of d's container.
func env(t *testing.T, d *appsv1.Deployment, name string) string {
	t.Helper()
	for _, e := range container(t, d).Env {
		if e.Name == name {
			if e.ValueFrom != nil {
				t.Fatalf("%s comes from a reference, want a value", name)
			}
			return e.Value
		}
	}
	t.Fatalf("Deployment does not set %s", name)
	return ""
}

// volumeAt returns d's volume mounted at the directory holding path, and
// its mount.
func volumeAt(t *testing.T, d *appsv1.Deployment, path string) (*corev1.Volume, *corev1.VolumeMount) {
	t.Helper()
	c := container(t, d)
	for i, vm := range c.VolumeMounts {
		if filepath.Dir(path) != vm.MountPath {
			continue
		}
		for j, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name {
				return &d.Spec.Template.Spec.Volumes[j], &c.VolumeMounts[i]
			}
		}
		t.Fatalf("volume mount %s names no volume", vm.Name)
	}
	t.Fatalf("no volume is mounted at %s, the directory of %s", filepath.Dir(path), path)
	return nil, nil
}

// settingRow matches a row of the settings table "dtmfd -h" prints:
// "  -flag  ENV  default  usage".
var settingRow = regexp.MustCompile(`^\s+-([a-z0-9-]+)\s+([A-Z][A-Z0-9_]*)\s`)

// parseSettings returns the environment variables listed in dtmfd's
// usage text.
func parseSettings(usage string) map[string]bool {
	envs := map[string]bool{}
	for line := range strings.Lines(usage) {
		if m := settingRow.FindStringSubmatch(line); m != nil {
			envs[m[2]] = true
		}
	}
	return envs
}

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd  string
	args string
}

// stage is one FROM of a Dockerfile and the instructions after it.
type stage struct {
	from, name string
	instrs     []instruction
}

// parseDockerfile splits a Dockerfile into stages. It knows comments,
// blank lines and backslash continuations, which is all deploy/Dockerfile
// uses; parser directives and heredocs are not supported.
func parseDockerfile(src string) []stage {
	var stages []stage
	for _, in := range instructions(src) {
		if in.cmd == "FROM" {
			stages = append(stages, newStage(in.args))
			continue
		}
		if len(stages) > 0 {
			last := &stages[len(stages)-1]
			last.instrs = append(last.instrs, in)
		}
	}
	return stages
}

// instructions returns the instructions of src in order, with comments
// dropped and continuation lines joined.
func instructions(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	for line := range strings.Lines(src) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}

		cur.WriteString(line)
		if in, ok := parseInstruction(cur.String()); ok {
			out = append(out, in)
		}
		cur.Reset()
	}
	if in, ok := parseInstruction(cur.String()); ok {
		out = append(out, in)
	}
	return out
}

// parseInstruction splits one joined line into its upper-cased keyword
// and arguments; a blank line is no instruction.
func parseInstruction(line string) (instruction, bool) {
	line = strings.TrimSpace(line)
	if line == "" {
		return instruction{}, false
	}
	cmd, args := line, ""
	if i := strings.IndexFunc(line, unicode.IsSpace); i >= 0 {
		cmd, args = line[:i], line[i:]
	}
	return instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}, true
}

// newStage reads the arguments of FROM: IMAGE [AS NAME].
func newStage(args string) stage {
	var s stage
	f := strings.Fields(args)
	if len(f) > 0 {
		s.from = f[0]
	}
	if len(f) == 3 && strings.EqualFold(f[1], "AS") {
		s.name = f[2]
	}
	return s
}

// find returns the arguments of every instruction cmd in the stage.
func (s stage) find(cmd string) []string {
	var args []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			args = append(args, in.args)
		}
	}
	return args
}

// execForm decodes the JSON array form of ENTRYPOINT or CMD.
func execForm(args string) ([]string, error) {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		return nil, fmt.Errorf("not exec form %s: %w", args, err)
	}
	return argv, nil
}

// The dtmfd binary the tests run, built once into binDir.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

// TestMain removes the binary built for the tests when they end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dtmfd-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir

	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dtmfdBinary returns the release build of dtmfd, built once by
// deploy/build.sh. Building takes about a minute from a cold cache, so
// tests that need it are skipped under -short.
func dtmfdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds dtmfd; skipped under -short")
	}

	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "dtmfd")
		binError = runBuildScript(binPath, "", nil)
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// runBuildScript runs deploy/build.sh with out as its argument, from dir
// (the current directory when empty), with extra environment variables.
func runBuildScript(out, dir string, env []string) error {
	script, err := filepath.Abs(filepath.Join(repoRoot, "deploy", "build.sh"))
	if err != nil {
		return err
	}

	cmd := exec.Command(script, out)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("deploy/build.sh %s: %w\n%s", out, err, b)
	}
	return nil
}
