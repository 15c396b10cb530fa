package token

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecret returns the contents of file, or value when file is empty.
//
// Kubernetes mounts secrets as files, and a secret written with echo or an
// editor ends in a newline the token endpoint would reject, so trailing
// spaces and newlines are trimmed. A file left empty by that is an error: a
// blank secret would only fail later, at the token endpoint, less clearly.
func ReadSecret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}

	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}

	secret := strings.TrimRight(string(b), " \t\r\n")
	if secret == "" {
		return "", fmt.Errorf("read secret file %s: file is empty", file)
	}
	return secret, nil
}
