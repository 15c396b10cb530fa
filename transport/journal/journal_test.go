package journal

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

func write(id string, at time.Time) *actors.Write {
	return &actors.Write{
		ID:            id,
		InteractionID: "call-" + id,
		Variables: []ivrspec.Variable{
			{Name: "ivr_status", Value: "completed"},
			{Name: "pin", Value: "1234", Sensitive: true},
		},
		DigitAt:   at.Add(-time.Millisecond),
		DecidedAt: at,
	}
}

func TestJournalKeepsUndeliveredAcrossReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"c", "a", "b", "d"} {
		if err := j.Record(write(id, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Remove([]string{"a", "d"}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	got, err := j.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "c" || got[1].ID != "b" {
		t.Fatalf("pending = %v, want c then b (decision order)", ids(got))
	}
	want := write("c", base)
	if got[0].InteractionID != want.InteractionID || got[0].Variables[1] != want.Variables[1] ||
		!got[0].DecidedAt.Equal(want.DecidedAt) {
		t.Errorf("record = %+v, want %+v", got[0], want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestJournalConcurrentRecords(t *testing.T) {
	t.Parallel()
	j, err := Open(filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if err := j.Record(write(string(rune('A'+i%26))+string(rune('a'+i/26)), time.Now())); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := j.Pending()
	if err != nil || len(got) != 200 {
		t.Errorf("pending = %d (%v), want 200", len(got), err)
	}
}

func ids(ws []*actors.Write) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.ID)
	}
	return out
}
