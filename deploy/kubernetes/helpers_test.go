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
	"sigs.k8s.io/yaml"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// kustomization is the part of a kustomize Kustomization these manifests
// use. Decoding it strictly makes a field kustomize does not know an error.
type kustomization struct {
	APIVersion         string               `json:"apiVersion"`
	Kind               string               `json:"kind"`
	Labels             []kustomizeLabels    `json:"labels,omitempty"`
	Resources          []string             `json:"resources,omitempty"`
	ConfigMapGenerator []configMapGenerator `json:"configMapGenerator,omitempty"`
	Images             []kustomizeImage     `json:"images,omitempty"`
}

type kustomizeLabels struct {
	Pairs            map[string]string `json:"pairs"`
	IncludeSelectors bool              `json:"includeSelectors,omitempty"`
}

type configMapGenerator struct {
	Name    string   `json:"name"`
	Files   []string `json:"files,omitempty"`
	Options struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash,omitempty"`
	} `json:"options"`
}

// keys returns the ConfigMap keys the generator makes: a file's base
// name, or the KEY of a "KEY=PATH" entry.
func (g configMapGenerator) keys() []string {
	var keys []string
	for _, f := range g.Files {
		if k, _, ok := strings.Cut(f, "="); ok {
			keys = append(keys, k)
			continue
		}
		keys = append(keys, filepath.Base(f))
	}
	return keys
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
}

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
		return &kustomization{}, nil
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

// manifests is every object of deploy/kubernetes, decoded.
type manifests struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	cluster        []any
	secret         *corev1.Secret
	serviceMonitor *serviceMonitor

	base       *kustomization
	monitoring *kustomization

	// files maps each manifest file, relative to this directory, to its
	// objects. Kustomizations and the files their generators read are
	// not in it.
	files map[string][]any
}

// manifestFiles lists the YAML files under this directory, relative to
// it, except those a ConfigMap generator reads as data.
func manifestFiles(data map[string]bool) ([]string, error) {
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" || data[path] {
			return err
		}
		files = append(files, path)
		return nil
	})
	sort.Strings(files)
	return files, err
}

// dataFiles returns the files kustomization k in dir reads as data.
func dataFiles(dir string, k *kustomization) map[string]bool {
	data := map[string]bool{}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Files {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			data[filepath.Join(dir, f)] = true
		}
	}
	return data
}

// loadManifests decodes every manifest and kustomization once.
var loadManifests = sync.OnceValues(func() (*manifests, error) {
	m := &manifests{files: map[string][]any{}}
	var err error
	if m.base, err = loadKustomization("."); err != nil {
		return nil, err
	}
	if m.monitoring, err = loadKustomization("monitoring"); err != nil {
		return nil, err
	}

	data := dataFiles(".", m.base)
	for p := range dataFiles("monitoring", m.monitoring) {
		data[p] = true
	}
	files, err := manifestFiles(data)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		if err := m.add(f); err != nil {
			return nil, err
		}
	}
	return m, m.complete()
})

func loadKustomization(dir string) (*kustomization, error) {
	objs, err := decodeFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("%s/kustomization.yaml: want one document, got %d", dir, len(objs))
	}
	k, ok := objs[0].(*kustomization)
	if !ok {
		return nil, fmt.Errorf("%s/kustomization.yaml: not a Kustomization", dir)
	}
	return k, nil
}

// add decodes one manifest file and files its objects by kind.
func (m *manifests) add(file string) error {
	objs, err := decodeFile(file)
	if err != nil {
		return err
	}
	m.files[file] = objs

	for _, o := range objs {
		if strings.HasPrefix(filepath.ToSlash(file), "cluster/") {
			// The cluster overlay patches the base; its objects are
			// checked on their own.
			m.cluster = append(m.cluster, o)
			continue
		}
		switch o := o.(type) {
		case *appsv1.Deployment:
			m.deployment = o
		case *corev1.Service:
			m.service = o
		case *corev1.ServiceAccount:
			m.serviceAccount = o
		case *policyv1.PodDisruptionBudget:
			m.pdb = o
		case *corev1.Secret:
			m.secret = o
		case *serviceMonitor:
			m.serviceMonitor = o
		default:
			return fmt.Errorf("%s: unexpected %T", file, o)
		}
	}
	return nil
}

func (m *manifests) complete() error {
	switch {
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

// container returns the Deployment's dtmfd container.
func (m *manifests) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(cs))
	}
	return &cs[0]
}

// env returns the value of a plain environment variable of the container.
func (m *manifests) env(t *testing.T, name string) string {
	t.Helper()
	for _, e := range m.container(t).Env {
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

// volumeAt returns the volume mounted at the directory holding path, and
// its mount.
func (m *manifests) volumeAt(t *testing.T, path string) (*corev1.Volume, *corev1.VolumeMount) {
	t.Helper()
	for i, vm := range m.container(t).VolumeMounts {
		if filepath.Dir(path) != vm.MountPath {
			continue
		}
		for j, v := range m.deployment.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name {
				return &m.deployment.Spec.Template.Spec.Volumes[j], &m.container(t).VolumeMounts[i]
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
