package emulator

import (
	"encoding/json"
	"slices"
	"testing"
)

func FuzzParseVariables(f *testing.F) {
	f.Add([]byte(statusBody))
	f.Add([]byte(`[{"name":"ivr_selection","value":"[\"2\",\"A\",\"1\"]"}]`))
	f.Add([]byte(`[{"name":"","value":""}]`))
	f.Add([]byte(`[] []`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, body []byte) {
		vars, err := parseVariables(body)
		if err != nil {
			return
		}
		if len(vars) == 0 {
			t.Fatal("accepted an empty write")
		}

		again, err := parseVariables(mustMarshal(t, vars))
		if err != nil || !slices.Equal(again, vars) {
			t.Fatalf("round trip of %q: %v, %v", body, again, err)
		}
	})
}

func FuzzParseTokenRequest(f *testing.F) {
	f.Add("application/json", []byte(`{"grant_type":"client_credentials","client_id":"a"}`))
	f.Add("application/x-www-form-urlencoded",
		[]byte(`grant_type=client_credentials&client_id=a%20b`))
	f.Add("application/x-www-form-urlencoded", []byte(`grant_type=a&grant_type=b`))
	f.Add("text/plain; charset=utf-8", []byte(`grant_type=client_credentials`))

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, err := parseTokenRequest(contentType, body)
		if err != nil {
			return
		}
		if req.GrantType == "" {
			t.Fatal("accepted a request without grant_type")
		}
		if req.basic {
			t.Fatal("body parsing claimed HTTP Basic")
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
