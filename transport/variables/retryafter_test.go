package variables

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }

	tests := []struct {
		name   string
		v      string
		want   time.Duration
		wantOK bool
	}{
		{"seconds", "120", 2 * time.Minute, true},
		{"zero seconds", "0", 0, true},
		{"padded", "  5 ", 5 * time.Second, true},
		{"leading zeros", "007", 7 * time.Second, true},
		{"seconds at the cap", "600", MaxRetryAfter, true},
		{"seconds over the cap", "601", MaxRetryAfter, true},
		{"seconds overflowing int64", "99999999999999999999999", MaxRetryAfter, true},
		{"IMF-fixdate", date(90 * time.Second), 90 * time.Second, true},
		{"RFC 850 date", now.Add(time.Minute).Format(time.RFC850), time.Minute, true},
		{"asctime date", now.Add(time.Minute).Format(time.ANSIC), time.Minute, true},
		{"date now", date(0), 0, true},
		{"date past", date(-time.Hour), 0, true},
		{"date far ahead", date(24 * time.Hour), MaxRetryAfter, true},
		{"empty", "", 0, false},
		{"blank", "   ", 0, false},
		{"negative", "-5", 0, false},
		{"plus sign", "+5", 0, false},
		{"fraction", "1.5", 0, false},
		{"unit", "5s", 0, false},
		{"garbage", "soon", 0, false},
		{"date in a wrong format", now.Format(time.RFC3339), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, ok := ParseRetryAfter(tt.v, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v",
					tt.v, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"", "0", "120", "-1", "1.5", "99999999999999999999",
		"Tue, 04 Mar 2025 10:01:00 GMT", "Tuesday, 04-Mar-25 10:01:00 GMT",
		"Tue Mar  4 10:01:00 2025", "Mon, 01 Jan 0001 00:00:00 GMT",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, %v]", v, d, MaxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, false; a rejected value must give 0", v, d)
		}
	})
}
