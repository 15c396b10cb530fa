package deadletter

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadAll(t *testing.T) {
	t.Parallel()

	good, _ := encode(record("c-1"))
	g := strings.TrimSuffix(string(good), "\n")

	tests := []struct {
		name     string
		in       string
		wantRecs int
		wantBad  []int
	}{
		{"empty", "", 0, nil},
		{"one record", g + "\n", 1, nil},
		{"no final newline", g + "\n" + g, 2, nil},
		{"blank lines skipped", "\n" + g + "\n\n  \t\n" + g + "\n", 2, nil},
		{"CRLF", g + "\r\n" + g + "\r\n", 2, nil},
		{"minimal record", `{"interactionId":"c-9"}` + "\n", 1, nil},
		{"unknown fields kept compatible", `{"interactionId":"c-9","replayedAt":"x"}`, 1, nil},
		{"broken JSON", g + "\n{\"interactionId\":\n" + g + "\n", 2, []int{2}},
		{"null", "null\n" + g, 1, []int{1}},
		{"array", "[]\n" + g, 1, []int{1}},
		{"no interactionId", `{"attempts":3}` + "\n" + g, 1, []int{1}},
		{"wrong field type", `{"interactionId":"c","attempts":"3"}`, 0, []int{1}},
		{"two objects on a line", g + g + "\n" + g, 1, []int{1}},
		{"line too long",
			g + "\n" + `{"interactionId":"` + strings.Repeat("x", maxLine) + `"}` + "\n" + g,
			2, []int{2}},
		{"several bad", "x\n" + g + "\ny\n\nz", 1, []int{1, 3, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			recs, err := ReadAll(strings.NewReader(tt.in))
			if len(recs) != tt.wantRecs {
				t.Errorf("read %d records, want %d", len(recs), tt.wantRecs)
			}
			var me *MalformedError
			errors.As(err, &me)
			switch {
			case tt.wantBad == nil && err != nil:
				t.Errorf("ReadAll error = %v, want none", err)
			case tt.wantBad != nil && (me == nil || !reflect.DeepEqual(me.Lines, tt.wantBad)):
				t.Errorf("ReadAll error = %v, want lines %v malformed", err, tt.wantBad)
			}
		})
	}
}

func TestMalformedErrorMessage(t *testing.T) {
	t.Parallel()

	cause := errors.New("no interactionId")
	tests := []struct {
		name  string
		lines []int
		want  string
	}{
		{"one", []int{7}, "read dead letters: malformed line 7: no interactionId"},
		{"some", []int{3, 7, 9},
			"read dead letters: 3 malformed lines (3, 7, 9); line 3: no interactionId"},
		{"many", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			"read dead letters: 12 malformed lines (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...); " +
				"line 1: no interactionId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := &MalformedError{Lines: tt.lines, Err: cause}
			if got := err.Error(); got != tt.want {
				t.Errorf("Error() = %q\nwant %q", got, tt.want)
			}
			if !errors.Is(err, cause) {
				t.Error("MalformedError does not unwrap to its cause")
			}
		})
	}
}

func TestReadAllKeepsRecordsOnReadError(t *testing.T) {
	t.Parallel()

	good, _ := encode(record("c-1"))
	errDisk := errors.New("input/output error")
	r := io.MultiReader(
		strings.NewReader("junk\n"),
		bytes.NewReader(good),
		strings.NewReader(`{"interactionId":"c-2"`),
		iotest.ErrReader(errDisk),
	)

	recs, err := ReadAll(r)

	if len(recs) != 1 || recs[0].InteractionID != "c-1" {
		t.Errorf("records = %+v, want c-1 only", recs)
	}
	var me *MalformedError
	if !errors.Is(err, errDisk) || !errors.As(err, &me) || !reflect.DeepEqual(me.Lines, []int{1}) {
		t.Errorf("ReadAll error = %v, want the read error and line 1 malformed, not the cut line", err)
	}
}

func FuzzReadAll(f *testing.F) {
	good, _ := encode(record("c-1"))
	f.Add(string(good))
	f.Add(string(good) + "\n\n" + string(good))
	f.Add(`{"interactionId":"x","decidedAt":"2025-01-01T00:00:00+01:00","status":-1}`)
	f.Add("null\n[]\n{}\n\r\n")
	f.Add(`{"interactionId":"\u0000\ud800","variables":[{"name":1}]}`)

	f.Fuzz(func(t *testing.T, in string) {
		recs, err := ReadAll(strings.NewReader(in))

		lines := strings.Count(in, "\n") + 1
		var me *MalformedError
		bad := 0
		if errors.As(err, &me) {
			bad = len(me.Lines)
			for i, n := range me.Lines {
				if n < 1 || n > lines || (i > 0 && n <= me.Lines[i-1]) {
					t.Fatalf("bad line numbers %v for %d lines", me.Lines, lines)
				}
			}
		} else if err != nil {
			t.Fatalf("ReadAll error %v is not a MalformedError", err)
		}
		if len(recs)+bad > lines {
			t.Fatalf("%d records and %d bad lines from %d lines", len(recs), bad, lines)
		}

		// Every record read back must survive being written and read
		// again unchanged.
		var buf bytes.Buffer
		for _, r := range recs {
			if r.InteractionID == "" {
				t.Fatalf("record without interactionId: %+v", r)
			}
			line, err := encode(r)
			if err != nil {
				t.Fatalf("encode %+v: %v", r, err)
			}
			buf.Write(line)
		}
		again, err := ReadAll(bytes.NewReader(buf.Bytes()))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-read %d records, %v; want %d and no error", len(again), err, len(recs))
		}
		var buf2 bytes.Buffer
		for _, r := range again {
			line, _ := encode(r)
			buf2.Write(line)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatalf("round trip changed records:\n%s\n%s", buf.Bytes(), buf2.Bytes())
		}
	})
}
