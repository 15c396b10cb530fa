package ivrspec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// feed applies a script to s as run does: a key per character, '~' for
// the running timer. It returns the first decision.
func feed(s *Session, script string, from int) *Decision {
	var d *Decision
	for i := 0; i < len(script); i++ {
		var eff Effects
		if script[i] == '~' {
			eff = s.Timeout()
		} else {
			eff = s.Digit(script[i], int64(from+i+1))
		}
		if d == nil {
			d = eff.Decision
		}
	}
	return d
}

// resumed runs script, moving the session to a restored copy at cut.
func resumed(t *testing.T, f *Flow, script string, cut int) (*Decision, *Session) {
	t.Helper()
	s, eff := f.NewSession("call-1")
	d := eff.Decision
	if x := feed(s, script[:cut], 0); d == nil {
		d = x
	}
	r, err := f.Restore(s.State())
	if err != nil {
		t.Fatalf("restore after %q: %v", script[:cut], err)
	}
	if x := feed(r, script[cut:], cut); d == nil {
		d = x
	}
	return d, r
}

func TestRestoreCarriesTheCallOn(t *testing.T) {
	t.Parallel()
	f := Example(10 * time.Second)
	bank, err := LoadExample("bank.yaml", Options{DefaultTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		flow   *Flow
		script string
	}{
		{"contract completes", f, "~2A1"},
		{"contract times out", f, "~2~"},
		{"contract wrong keys ignored", f, "~9292A1"},
		{"contract repeated key", f, "~22A1"},
		{"bank collect", bank, "~1123456#~1"},
		{"bank no input", bank, "~~~~~~"},
		{"bank wrong keys", bank, "~9999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, _, whole := run(t, tt.flow, tt.script)
			for cut := 0; cut <= len(tt.script); cut++ {
				got, r := resumed(t, tt.flow, tt.script, cut)
				if vars(got) != vars(want) {
					t.Errorf("cut at %d: decision %s, want %s", cut, vars(got), vars(want))
				}
				if !reflect.DeepEqual(r.State(), whole.State()) {
					t.Errorf("cut at %d: state %+v, want %+v", cut, r.State(), whole.State())
				}
			}
		})
	}
}

func TestRestoreRejectsForeignState(t *testing.T) {
	t.Parallel()
	f := Example(10 * time.Second)
	s, _ := f.NewSession("call-1")
	good := s.State()

	tests := []struct {
		name  string
		edit  func(*State)
		wants string
	}{
		{"unknown node", func(st *State) { st.Node = "gone" }, "no node"},
		{"unknown path node", func(st *State) { st.Path = []PathEntry{{Node: "gone", Input: "1"}} }, "in the path"},
		{"unknown timer", func(st *State) { st.Timer = 99 }, "unknown timer"},
		{"keys at a menu", func(st *State) { st.Buf = "12" }, "keys gathered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := good
			tt.edit(&st)
			_, err := f.Restore(st)
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("Restore error = %v, want one containing %q", err, tt.wants)
			}
		})
	}
}

func FuzzRestoreRoundTrip(f *testing.F) {
	for _, s := range []string{"~2A1", "~1123456#~1", "~~~", "9~#*0"} {
		f.Add(s, uint8(2))
	}
	flows := []*Flow{Example(10 * time.Second)}
	if bank, err := LoadExample("bank.yaml", Options{}); err == nil {
		flows = append(flows, bank)
	}
	f.Fuzz(func(t *testing.T, script string, cut uint8) {
		if len(script) > 64 {
			return
		}
		for i := 0; i < len(script); i++ {
			if script[i] != '~' && !ValidKey(script[i]) {
				return
			}
		}
		for _, flow := range flows {
			c := int(cut) % (len(script) + 1)
			want, _, whole := run(t, flow, script)
			got, r := resumed(t, flow, script, c)
			if vars(got) != vars(want) || !reflect.DeepEqual(r.State(), whole.State()) {
				t.Fatalf("%s: script %q cut at %d: %s vs %s", flow.Name, script, c, vars(got), vars(want))
			}
		}
	})
}

// TestRestoreKeepsRecentKeys: a replay of a key from before a restore is
// still dropped after it, whether the store kept every recent key or,
// as older stores do, only the last one.
func TestRestoreKeepsRecentKeys(t *testing.T) {
	t.Parallel()
	f := collect(t, 4, 4, "#", 0)
	tests := []struct {
		name   string
		edit   func(*State)
		replay string
		want   Outcome
	}{
		{"all recent keys kept, the first replayed", func(*State) {}, "1@1", Duplicate},
		{"all recent keys kept, the last replayed", func(*State) {}, "2@2", Duplicate},
		{"only the last kept, the last replayed", func(st *State) { st.Seen = nil }, "2@2", Duplicate},
		{"only the last kept, the first replayed", func(st *State) { st.Seen = nil }, "1@1", Accepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := f.NewSession("c")
			press(t, s, "1@1 2@2")
			st := s.State()
			tt.edit(&st)
			r, err := f.Restore(st)
			if err != nil {
				t.Fatal(err)
			}
			if outs, _ := press(t, r, tt.replay); outs[0] != tt.want {
				t.Errorf("replay after restore = %v, want %v", outs[0], tt.want)
			}
		})
	}
}
