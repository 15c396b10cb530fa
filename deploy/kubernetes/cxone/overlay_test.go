// Package cxone holds the cxone profile's Kubernetes overlay; its test
// checks that every secret the profile reads reaches it as a file.
package cxone

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// built is the overlay as kustomize builds it, and the Secret template.
type built struct {
	deployment appsv1.Deployment
	secret     corev1.Secret
}

func build(t *testing.T) built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	var b built
	found := false
	for _, r := range rm.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(y, &b.deployment); err != nil {
			t.Fatalf("decode Deployment: %v", err)
		}
		found = true
	}
	if !found {
		t.Fatal("the overlay builds no Deployment")
	}

	y, err := os.ReadFile("secret.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(y, &b.secret); err != nil {
		t.Fatalf("decode secret.example.yaml: %v", err)
	}
	return b
}

func (b built) container(t *testing.T) corev1.Container {
	t.Helper()
	cs := b.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return cs[0]
}

func (b built) env(t *testing.T) map[string]corev1.EnvVar {
	t.Helper()
	m := make(map[string]corev1.EnvVar)
	for _, e := range b.container(t).Env {
		m[e.Name] = e
	}
	return m
}

// The profile is selected, the tutorial's tenant is gone, and every name
// the overlay takes from the Secret is a key of the Secret template.
func TestOverlaySettings(t *testing.T) {
	t.Parallel()
	b := build(t)
	env := b.env(t)

	if e := env["DTMFD_PROFILE"]; e.Value != "cxone" {
		t.Errorf("DTMFD_PROFILE = %q, want cxone", e.Value)
	}
	if _, ok := env["CXONE_TENANT"]; ok {
		t.Error("CXONE_TENANT is set; the cxone profile reads its tenant from the sign-in")
	}
	inline := []string{"CXONE_ACCESS_KEY_SECRET", "CXONE_CLIENT_SECRET", "DTMFD_INGRESS_AUTH"}
	for _, name := range inline {
		if _, ok := env[name]; ok {
			t.Errorf("%s is in the environment; it belongs in a file", name)
		}
	}
	for _, e := range b.container(t).Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if _, ok := b.secret.StringData[ref.Key]; ref.Name != b.secret.Name || !ok {
			t.Errorf("%s refers to %s/%s, which the Secret template does not have",
				e.Name, ref.Name, ref.Key)
		}
	}
	if _, ok := env["CXONE_ACCESS_KEY_ID"]; !ok {
		t.Error("no CXONE_ACCESS_KEY_ID")
	}
}

// Each secret file the profile reads is an item of the mounted Secret,
// under a key the Secret template has, readable by the owner only.
func TestOverlaySecretFiles(t *testing.T) {
	t.Parallel()
	b := build(t)
	env := b.env(t)
	spec := b.deployment.Spec.Template.Spec

	for _, name := range []string{
		"CXONE_ACCESS_KEY_SECRET_FILE", "CXONE_CLIENT_SECRET_FILE", "DTMFD_INGRESS_AUTH_FILE",
	} {
		t.Run(name, func(t *testing.T) {
			path := env[name].Value
			if path == "" {
				t.Fatalf("%s is not set", name)
			}
			dir, file := filepath.Split(path)
			i := slices.IndexFunc(b.container(t).VolumeMounts, func(m corev1.VolumeMount) bool {
				return filepath.Clean(m.MountPath) == filepath.Clean(dir)
			})
			if i < 0 {
				t.Fatalf("nothing is mounted at %s", dir)
			}
			mount := b.container(t).VolumeMounts[i]
			j := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool {
				return v.Name == mount.Name
			})
			vol := spec.Volumes[j].Secret
			if vol == nil || vol.SecretName != b.secret.Name {
				t.Fatalf("%s is not on a volume of Secret %s", dir, b.secret.Name)
			}
			k := slices.IndexFunc(vol.Items, func(p corev1.KeyToPath) bool { return p.Path == file })
			if k < 0 {
				t.Fatalf("no item of the Secret volume is written to %s", file)
			}
			if _, ok := b.secret.StringData[vol.Items[k].Key]; !ok {
				t.Errorf("the Secret template has no key %s", vol.Items[k].Key)
			}
			if vol.DefaultMode == nil || *vol.DefaultMode != 0o400 {
				t.Errorf("secret files' mode %v, want 0400", vol.DefaultMode)
			}
		})
	}
}
