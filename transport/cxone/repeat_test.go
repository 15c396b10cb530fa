package cxone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/emulator"
)

// sameKeys is a flow whose every menu takes 1 and 2, so a key applied
// twice moves the call on and shows in the path.
const sameKeys = `
version: 1
start: first
defaults:
  noInput:
    fallback: timed_out
  noMatch:
    ignore: true
nodes:
  first:
    type: menu
    branches:
      "1": second
      "2": second
  second:
    type: menu
    branches:
      "1": third
      "2": third
  third:
    type: menu
    branches:
      "1": done
      "2": done
  done:
    type: end
    variables:
      ivr_selection: ${path}
      ivr_status: completed
  timed_out:
    type: end
    variables:
      ivr_status: timeout_fallback
`

// numberedTurn is one Studio request of a script that numbers its turns.
type numberedTurn struct {
	n             int
	event, digits string
	status, node  string
}

func TestStudioTurnSentTwiceIsAppliedOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flow    func(*testing.T) *ivrspec.Flow
		params  []string
		turns   []numberedTurn
		signals [][]string
	}{
		{
			name:   "keys",
			flow:   parseFlow(sameKeys),
			params: []string{"ivr_status", "ivr_selection"},
			turns: []numberedTurn{
				{1, "start", "", "started", "first"},
				{2, "digits", "2", "waiting", "second"},
				{3, "digits", "1", "waiting", "third"},
				{4, "digits", "2", "decided", ""},
			},
			signals: [][]string{{"completed", `["2","1","2"]`}},
		},
		{
			name:   "silence",
			flow:   bank,
			params: []string{"ivr_status", "ivr_reason"},
			turns: []numberedTurn{
				{1, "start", "", "started", "main_menu"},
				{2, "timeout", "", "waiting", "main_menu"},
				{3, "timeout", "", "waiting", "main_menu"},
				{4, "timeout", "", "decided", ""},
			},
			signals: [][]string{{"failed", "no_input"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, tt.flow(t), tt.params, nil)
			ctx := testContext(t)

			for _, turn := range tt.turns {
				first := postTurn(t, ctx, s.studio, "4600500", turn)
				if first.Status != turn.status || first.Node != turn.node {
					t.Fatalf("turn %d (%s %q): %s at %q, want %s at %q", turn.n, turn.event,
						turn.digits, first.Status, first.Node, turn.status, turn.node)
				}
				again := postTurn(t, ctx, s.studio, "4600500", turn)
				if !reflect.DeepEqual(again, first) {
					t.Fatalf("turn %d sent again: %+v, want %+v", turn.n, again, first)
				}
			}

			s.drain(t)
			if got := s.signals("4600500"); !slices.EqualFunc(got, tt.signals, slices.Equal) {
				t.Errorf("signals = %q, want %q, as if each turn was sent once", got, tt.signals)
			}
		})
	}
}

func parseFlow(src string) func(*testing.T) *ivrspec.Flow {
	return func(t *testing.T) *ivrspec.Flow {
		t.Helper()
		f, err := ivrspec.Parse("same-keys.yaml", []byte(src), ivrspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
}

// postTurn posts a Studio request that carries its turn number, as the
// REST API action sends it, and decodes the reply.
func postTurn(t *testing.T, ctx context.Context, c emulator.StudioClient, contact string,
	turn numberedTurn) *emulator.StudioReply {
	t.Helper()
	body := fmt.Sprintf(`{"contactId":%q,"event":%q,"digits":%q,"turn":%d}`,
		contact, turn.event, turn.digits, turn.n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", c.Auth)

	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var rep emulator.StudioReply
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil || res.StatusCode != 200 {
		t.Fatalf("turn %d: status %d, %v", turn.n, res.StatusCode, err)
	}
	return &rep
}
