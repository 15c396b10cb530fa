package emulator

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// recordingConn records each write that reaches the socket.
type recordingConn struct {
	net.Conn
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkedConn(t *testing.T) {
	big := strings.Repeat("x", corkLimit-2)
	tests := []struct {
		name string
		// steps: "cork", "uncork", or data to write.
		steps []string
		want  []string
	}{
		{"uncorked writes go straight out", []string{"a", "b"}, []string{"a", "b"}},
		{"corked writes go out together at uncork",
			[]string{"cork", "a", "b", "c", "uncork"}, []string{"abc"}},
		{"nothing held, nothing written", []string{"cork", "uncork"}, nil},
		{"writes after uncork go straight out",
			[]string{"cork", "a", "uncork", "b"}, []string{"a", "b"}},
		{"a full hold is written before more is held",
			[]string{"cork", big, "abc", "uncork"}, []string{big, "abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingConn{}
			c := &corkedConn{Conn: rec}
			for _, s := range tt.steps {
				switch s {
				case "cork":
					c.cork()
				case "uncork":
					if err := c.uncork(time.Second); err != nil {
						t.Fatalf("uncork: %v", err)
					}
				default:
					if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
						t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
					}
				}
			}
			var got []string
			for _, w := range rec.writes {
				got = append(got, string(w))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d writes reached the socket, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("write %d is %d bytes starting %.8q, want %d bytes starting %.8q",
						i, len(got[i]), got[i], len(tt.want[i]), tt.want[i])
				}
			}
		})
	}
}
