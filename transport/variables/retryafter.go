package variables

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait ParseRetryAfter reports. A rate limit window
// is seconds to minutes; a longer value is far more likely a mistake, such
// as a wrong year in a date, than a real request to hold a caller's
// decision for hours. A caller that must give up sooner does so by its own
// deadline.
const MaxRetryAfter = 10 * time.Minute

// ParseRetryAfter reads a Retry-After header value, either delay-seconds
// ("120") or an HTTP-date, the latter measured from now. It reports false
// for an empty or malformed value. A date already past yields 0 and true:
// the platform asked for no further wait. Values beyond MaxRetryAfter are
// capped to it.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}

	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) {
			// Only overflow fails here: the value is huge.
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}

	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}

// isDigits reports whether s is one or more ASCII digits, the only form
// delay-seconds takes: no sign, no fraction.
func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
