package cxone

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func FuzzParseStudioRequest(f *testing.F) {
	f.Add([]byte(`{"contactId":"4600123","event":"start"}`))
	f.Add([]byte(`{"contactId":4600123,"event":"digits","digits":"12#","session":"s"}`))
	f.Add([]byte(`{"contactId":1e3,"event":"timeout"}`))
	f.Add([]byte(`{"contactId":"1","event":"hangup","digits":"1"}`))
	f.Add([]byte(`{"contactId":"1","event":"digits","digit":"1"}`))
	f.Add([]byte(`{"contactId":"1","event":"digits","digits":"1","turn":7}`))
	f.Add([]byte(`{"contactId":"1","event":"timeout","turn":"0"}`))
	f.Add([]byte(`{"contactId":"1","event":"start","turn":null}`))
	f.Add([]byte(`{"contactId":"1","event":"digits","digits":"1","node":"main_menu","turn":"2"}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		_, tr, err := parseStudioRequest(body)
		if err != nil {
			return
		}
		if checkContactID(tr.contactID) != nil || checkKeys(tr.keys) != nil {
			t.Fatalf("accepted %q as %+v", body, tr)
		}
		if tr.requestID != "" && !isTurnRequestID(tr.requestID) {
			t.Fatalf("accepted %q with request id %q", body, tr.requestID)
		}
		if tr.kind < turnStart || tr.kind > turnHangup {
			t.Fatalf("accepted %q with no turn kind", body)
		}
		if tr.keys != "" && tr.kind != turnKeys {
			t.Fatalf("accepted keys %q on a %v turn", tr.keys, tr.kind)
		}
		if len(tr.node) > maxNodeID {
			t.Fatalf("accepted a node of %d bytes", len(tr.node))
		}
	})
}

// isTurnRequestID reports whether id names a Studio turn numbered from 1.
func isTurnRequestID(id string) bool {
	n, ok := strings.CutPrefix(id, "studio:")
	v, err := strconv.ParseInt(n, 10, 64)
	return ok && err == nil && v >= 1 && strconv.FormatInt(v, 10) == n
}

func FuzzParseVAHRequest(f *testing.F) {
	f.Add([]byte(exchange("DTMF_AS_TEXT", "1", ourState)))
	f.Add([]byte(exchange("AUTOMATED_TEXT", "welcome", "")))
	f.Add([]byte(exchange("NO_INPUT", "", mustJSON(ourState))))
	f.Add([]byte(`{"userInputType":"TEXT","executionInfo":{"contactId":"12"}}`))
	f.Add([]byte(`{"executionInfo":null}`))

	h := &VAH{c: &core{log: discardLogger()}}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := h.parse(body)
		if err != nil {
			return
		}
		if checkContactID(tr.contactID) != nil || checkKeys(tr.keys) != nil {
			t.Fatalf("accepted %q as %+v", body, tr)
		}
		if tr.kind < turnStart || tr.kind > turnHangup {
			t.Fatalf("accepted %q with no turn kind", body)
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(ourState))
	f.Add([]byte(mustJSON(ourState)))
	f.Add([]byte(`null`))
	f.Add([]byte(`"null"`))

	f.Fuzz(func(t *testing.T, raw []byte) {
		st, ok := parseState(raw)
		if !ok {
			return
		}
		if st.Version != stateVersion || st.Session == "" {
			t.Fatalf("accepted %q as %+v", raw, st)
		}
		b, _ := json.Marshal(st)
		if again, ok := parseState(b); !ok || again != st {
			t.Fatalf("round trip of %+v: %+v %v", st, again, ok)
		}
	})
}

func FuzzTenantFromIDToken(f *testing.F) {
	f.Add(idToken(`{"tenantId":"11e7"}`))
	f.Add(idToken(`{"tenantId":12}`))
	f.Add("a.b.c")
	f.Add("..")

	f.Fuzz(func(t *testing.T, jwt string) {
		id, err := tenantFromIDToken(jwt, DefaultTenantClaim)
		if err != nil && id != "" {
			t.Fatalf("error %v with tenant %q", err, id)
		}
	})
}

func FuzzParseTokenReply(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","expires_in":3600,"refresh_token":"r","id_token":"x"}`))
	f.Add([]byte(`{"access_token":"a","expires_in":"3600"}`))
	f.Add([]byte(`{"access_token":"","expires_in":-1}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseTokenReply(body)
		if err != nil {
			return
		}
		if r.AccessToken == "" {
			t.Fatalf("accepted %q without a token", body)
		}
		if d := lifetime(r.ExpiresIn); d <= 0 || d > maxLifetime {
			t.Fatalf("lifetime %v from %q", d, body)
		}
	})
}

func FuzzParseDiscovery(f *testing.F) {
	f.Add([]byte(`{"token_endpoint":"https://cxone.niceincontact.com/auth/token"}`))
	f.Add([]byte(`{"api_endpoint":"https://api-na1.niceincontact.com/"}`))
	f.Add([]byte(`{"api_endpoint":"https://u:p@h"}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (string, error){parseOpenID, parseCXoneConfig} {
			ep, err := parse(body)
			if err != nil {
				continue
			}
			if checkEndpoint(ep) != nil {
				t.Fatalf("accepted endpoint %q", ep)
			}
		}
	})
}
