package deadletter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/transport/variables"
)

var decided = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func record(id string) Record {
	return Record{
		InteractionID: id,
		Variables: []variables.Variable{
			{Name: "ivr_selection", Value: `["2","A","1"]`},
			{Name: "ivr_status", Value: "completed"},
		},
		DecidedAt: decided,
		FailedAt:  decided.Add(5 * time.Minute),
		Attempts:  9,
		Status:    503,
		Error:     "write variables: status 503",
	}
}

func openTemp(t *testing.T) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "dead", "letters.jsonl")
	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

func readFile(t *testing.T, path string) ([]Record, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read file: %v", err)
	}
	return ReadAll(bytes.NewReader(b))
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f, path := openTemp(t)

	noReply := record("c-2")
	noReply.Status = 0
	noReply.Error = "write variables: post: connection refused"
	want := []Record{record("c-1"), noReply, record("c/3 <&>")}
	for _, r := range want {
		if err := f.Append(r); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}

	got, err := readFile(t, path)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadAll = %+v\nwant %+v", got, want)
	}
}

func TestLineFormat(t *testing.T) {
	t.Parallel()
	f, path := openTemp(t)
	r := record("c-1")
	noStatus := r
	noStatus.Status = 0

	f.Append(r)
	f.Append(noStatus)

	b, _ := os.ReadFile(path)
	head := `{"interactionId":"c-1",` +
		`"variables":[{"name":"ivr_selection","value":"[\"2\",\"A\",\"1\"]"},` +
		`{"name":"ivr_status","value":"completed"}],` +
		`"decidedAt":"2025-03-04T10:00:00Z","failedAt":"2025-03-04T10:05:00Z","attempts":9,`
	tail := `"error":"write variables: status 503"}` + "\n"
	want := head + `"status":503,` + tail + head + tail
	if string(b) != want {
		t.Errorf("file =\n%s\nwant\n%s", b, want)
	}
}

func TestReopenAppends(t *testing.T) {
	t.Parallel()
	f, path := openTemp(t)
	f.Append(record("c-1"))
	f.Close()

	g, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer g.Close()
	g.Append(record("c-2"))

	got, err := readFile(t, path)
	if err != nil || len(got) != 2 || got[0].InteractionID != "c-1" || got[1].InteractionID != "c-2" {
		t.Errorf("after reopen ReadAll = %+v, %v; want c-1 then c-2", got, err)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	_, path := openTemp(t)

	tests := []struct {
		name string
		path string
		want os.FileMode
	}{
		{"file", path, 0o600},
		{"created parent", filepath.Dir(path), 0o700 | os.ModeDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.want {
				t.Errorf("mode = %v, want %v", fi.Mode(), tt.want)
			}
		})
	}
}

func TestConcurrentAppendsWriteWholeLines(t *testing.T) {
	t.Parallel()
	f, path := openTemp(t)
	const writers, each = 8, 20

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := record(fmt.Sprintf("w%d-%d", w, i))
				// Larger than a pipe buffer, so only the lock keeps
				// lines apart.
				r.Variables[1].Value = strings.Repeat(fmt.Sprint(w), 16<<10)
				if err := f.Append(r); err != nil {
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	wg.Wait()

	got, err := readFile(t, path)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(got) != writers*each {
		t.Fatalf("read %d records, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	for _, r := range got {
		var w, i int
		fmt.Sscanf(r.InteractionID, "w%d-%d", &w, &i)
		if r.Variables[1].Value != strings.Repeat(fmt.Sprint(w), 16<<10) {
			t.Errorf("record %s holds another writer's value", r.InteractionID)
		}
		seen[r.InteractionID] = true
	}
	if len(seen) != writers*each {
		t.Errorf("read %d distinct records, want %d", len(seen), writers*each)
	}
}

func TestOpenAfterTornWrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "letters.jsonl")
	line, _ := encode(record("c-1"))
	torn := append(line, `{"interactionId":"c-2","varia`...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}

	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	f.Append(record("c-3"))
	f.Append(record("c-4"))

	got, err := readFile(t, path)
	var me *MalformedError
	if !errors.As(err, &me) || !reflect.DeepEqual(me.Lines, []int{2}) {
		t.Errorf("ReadAll error = %v, want line 2 malformed", err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.InteractionID)
	}
	if want := []string{"c-1", "c-3", "c-4"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("records = %v, want %v: the torn line must not swallow the next", ids, want)
	}
}

func TestAppendFailures(t *testing.T) {
	t.Parallel()

	closed, _ := openTemp(t)
	closed.Close()
	unencodable := record("c-1")
	unencodable.FailedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	open, path := openTemp(t)

	tests := []struct {
		name string
		f    *File
		r    Record
	}{
		{"nil file", nil, record("c-1")},
		{"closed file", closed, record("c-1")},
		{"time out of JSON range", open, unencodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Append(tt.r)
			if err == nil || !strings.HasPrefix(err.Error(), "append dead letter: ") {
				t.Errorf("Append error = %v, want an append dead letter error", err)
			}
		})
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("a failed Append left %q in the file", b)
	}
}

func TestOpenFailsOnUnusablePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	os.WriteFile(file, nil, 0o600)

	tests := []struct {
		name string
		path string
	}{
		{"path is a directory", dir},
		{"parent is a file", filepath.Join(file, "letters.jsonl")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if f, err := Open(tt.path); err == nil {
				f.Close()
				t.Errorf("Open(%q) succeeded, want an error", tt.path)
			}
		})
	}
}
