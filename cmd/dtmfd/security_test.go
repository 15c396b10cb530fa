package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulatorOnlyWhereAllowed(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		auth  string
		wantA int // without the token
		wantB int // with it
	}{
		{"off outside local mode", nil, "", 404, 404},
		{"on with a token", map[string]string{"DTMFD_SIMULATOR": "on", "DTMFD_SIMULATOR_TOKEN": "sim-token"}, "Bearer sim-token", 401, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startService(t, tt.env)
			post := func(auth string) int {
				req, _ := http.NewRequest("POST", "http://"+s.app.Addr()+"/simulator",
					strings.NewReader(`{"callId":"sim-1","digit":"1"}`))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if got := post(""); got != tt.wantA {
				t.Errorf("without a token: %d, want %d", got, tt.wantA)
			}
			if got := post(tt.auth); got != tt.wantB {
				t.Errorf("with the token: %d, want %d", got, tt.wantB)
			}
		})
	}
}

func TestSimulatorOutsideLocalModeNeedsToken(t *testing.T) {
	t.Parallel()
	_, err := parseConfig(nil, env("CXONE_TENANT", "t", "CXONE_CLIENT_ID", "i", "CXONE_CLIENT_SECRET", "s",
		"DTMFD_SIMULATOR", "on"), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "DTMFD_SIMULATOR_TOKEN") {
		t.Errorf("error = %v, want DTMFD_SIMULATOR_TOKEN named", err)
	}
}

func TestPlatformTLSIsVerified(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()

	plain, err := platformClient("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an unknown CA was accepted: %v", err)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, block, 0o600); err != nil {
		t.Fatal(err)
	}
	trusted, err := platformClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := trusted.Get(srv.URL)
	if err != nil {
		t.Fatalf("the configured CA was not trusted: %v", err)
	}
	resp.Body.Close()

	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := platformClient(ca); err == nil || !strings.Contains(err.Error(), "CXONE_CA_FILE") {
		t.Errorf("a bad CA file gave %v, want an error naming CXONE_CA_FILE", err)
	}
}
