package token

import (
	"strings"
	"testing"
	"time"
)

func TestParseReply(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		body     string
		token    string
		lifetime time.Duration
		wantErr  bool
	}{
		{"typical", `{"access_token":"a","expires_in":3600,"token_type":"Bearer"}`,
			"a", time.Hour, false},
		{"fractional", `{"access_token":"a","expires_in":1.5}`,
			"a", 1500 * time.Millisecond, false},
		{"missing expiry", `{"access_token":"a"}`, "a", defaultLifetime, false},
		{"null expiry", `{"access_token":"a","expires_in":null}`,
			"a", defaultLifetime, false},
		{"huge expiry", `{"access_token":"a","expires_in":1e300}`,
			"a", maxLifetime, false},
		{"not an object", `"a"`, "", 0, true},
		{"expiry not a number", `{"access_token":"a","expires_in":"soon"}`,
			"", 0, true},
		{"token not a string", `{"access_token":7}`, "", 0, true},
		{"empty", ``, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			tok, life, err := parseReply([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseReply err = %v, want error %v", err, tt.wantErr)
			}
			if tok != tt.token || life != tt.lifetime {
				t.Errorf("parseReply = %q, %v; want %q, %v",
					tok, life, tt.token, tt.lifetime)
			}
		})
	}
}

func TestExcerpt(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		body   string
		secret string
		want   string
	}{
		{"plain", "bad request\n", "x", "bad request"},
		{"raw secret", "secret a&b\"c leaked", `a&b"c`, "secret [redacted] leaked"},
		{"json secret", `{"s":"a&b\"c"}`, `a&b"c`, `{"s":"[redacted]"}`},
		{"form secret", "s=a%26b%22c", `a&b"c`, "s=[redacted]"},
		{"control characters", "a\x00b\x1bc", "x", "a b c"},
		{"long", strings.Repeat("é", 300), "x",
			strings.Repeat("é", maxExcerpt/2) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			if got := excerpt([]byte(tt.body), tt.secret); got != tt.want {
				t.Errorf("excerpt = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"a","expires_in":3600}`,
		`{"access_token":"a","expires_in":"60"}`,
		`{"access_token":"a","expires_in":-1}`,
		`{"access_token":"a","expires_in":1e308}`,
		`{"access_token":"a","expires_in":5e-324}`,
		`{"access_token":""}`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		tok, life, err := parseReply(body)
		if err != nil {
			return
		}
		if tok == "" {
			t.Errorf("accepted a reply without a token: %q", body)
		}
		if life <= 0 || life > maxLifetime {
			t.Errorf("lifetime %v out of range for %q", life, body)
		}
	})
}
