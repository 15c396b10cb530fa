package variables

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dtmfd/dtmfd/ivrspec"
)

func TestSinkDropsTheRefusedToken(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()

	var dropped []string
	s := &Sink{
		Client:     New(Options{BaseURL: srv.URL, Token: func(context.Context) (string, error) { return "tok-1", nil }}),
		Invalidate: func(tok string) { dropped = append(dropped, tok) },
	}
	err := s.Write(context.Background(), "call-1", []ivrspec.Variable{{Name: "ivr_status", Value: "completed"}})
	if err == nil {
		t.Fatal("a 401 was taken as delivered")
	}
	if v := s.Retry(err, 1); !v.Retry || v.After != 0 {
		t.Errorf("verdict = %+v, want a retry at once with a new token", v)
	}
	if len(dropped) != 1 || dropped[0] != "tok-1" {
		t.Errorf("dropped tokens = %q, want the refused one", dropped)
	}
	if v := s.Retry(&Error{Status: http.StatusBadRequest}, 1); v.Retry {
		t.Errorf("a 400 is retried: %+v", v)
	}
}
