package token

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadSecret(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		value   string
		content *string // nil: no file given
		want    string
		wantErr bool
	}{
		{"value only", "from-env", nil, "from-env", false},
		{"file with newline", "", ptr("s3cret\n"), "s3cret", false},
		{"file with spaces and crlf", "", ptr("s3cret \t\r\n"), "s3cret", false},
		{"inner and leading space kept", "", ptr(" s3 cret\n"), " s3 cret", false},
		{"file wins over value", "from-env", ptr("from-file"), "from-file", false},
		{"empty file", "from-env", ptr("\n"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			file := ""
			if tt.content != nil {
				file = filepath.Join(t.TempDir(), "secret")
				if err := os.WriteFile(file, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			got, err := ReadSecret(tt.value, file)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ReadSecret err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ReadSecret = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadSecretMissingFile(t *testing.T) {
	t.Parallel()

	_, err := ReadSecret("from-env", filepath.Join(t.TempDir(), "absent"))
	if err == nil {
		t.Error("ReadSecret of a missing file succeeded")
	}
}

func ptr(s string) *string { return &s }
