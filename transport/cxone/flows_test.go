package cxone_test

import (
	"slices"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// Every example flow, through each ingress, from the first prompt to the
// signal the script's Onsignal event gets.
func TestExampleFlowsEndToEnd(t *testing.T) {
	t.Parallel()
	flows := []struct {
		file   string
		params []string
		turns  []string // the keys of each turn after the first prompt
		nodes  []string // where each turn leaves the call; "" once decided
		signal []string
	}{
		{
			file:   "contract.yaml",
			params: []string{"ivr_status", "ivr_selection"},
			turns:  []string{"2", "A", "1"},
			nodes:  []string{"department", "confirm", ""},
			signal: []string{"completed", `["2","A","1"]`},
		},
		{
			file:   "bank.yaml",
			params: []string{"ivr_status", "account", "choice"},
			turns:  []string{"1", "12345678#", "4321", "2"},
			nodes:  []string{"account_number", "pin", "balance_menu", ""},
			signal: []string{"balance_savings", "12345678", "2"},
		},
		{
			file:   "support.yaml",
			params: []string{"ivr_status", "callback_number", "language"},
			turns:  []string{"2", "1", "2", "1", "0123456789"},
			nodes:  []string{"main_menu", "internet", "troubleshoot", "callback_number", ""},
			signal: []string{"callback", "0123456789", "2"},
		},
	}
	for _, f := range flows {
		for _, ingress := range []string{"studio", "vah"} {
			t.Run(f.file+"/"+ingress, func(t *testing.T) {
				t.Parallel()
				opts := ivrspec.Options{DefaultTimeout: 10 * time.Second}
				flow, err := ivrspec.LoadExample(f.file, opts)
				if err != nil {
					t.Fatal(err)
				}
				s := newStack(t, flow, f.params, nil)
				ctx := testContext(t)

				var nodes []string
				switch ingress {
				case "studio":
					call := s.studio.Call("4600900")
					rep, err := call.Send(ctx, "start", "")
					wantStudio(t, rep, err, "collect", "started", flow.Start.ID)
					for _, keys := range f.turns {
						rep, err := call.Send(ctx, "digits", keys)
						if err != nil {
							t.Fatal(err)
						}
						nodes = append(nodes, rep.Node)
					}
				case "vah":
					call := s.vah.Call(4600900)
					rep, err := call.Exchange(ctx, "AUTOMATED_TEXT", "welcome")
					wantVAH(t, rep, err, "PromptAndCollectNextResponse", "started", flow.Start.ID)
					for _, keys := range f.turns {
						rep, err := call.Exchange(ctx, "DTMF_AS_TEXT", keys)
						if err != nil {
							t.Fatal(err)
						}
						node, _ := rep.CustomPayload["dtmfdNode"].(string)
						nodes = append(nodes, node)
					}
				}
				if !slices.Equal(nodes, f.nodes) {
					t.Errorf("nodes after each turn = %q, want %q", nodes, f.nodes)
				}

				s.drain(t)
				want := [][]string{f.signal}
				if got := s.signals("4600900"); !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("signals = %q, want %q", got, want)
				}
			})
		}
	}
}
