package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestConfigEndedTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  func(string) string
		args []string
		want time.Duration
	}{
		{"default outlasts a call and its agent conversation", env(), nil, 4 * time.Hour},
		{"from the environment", env("DTMFD_ENDED_TTL", "90m"), nil, 90 * time.Minute},
		{"flag wins", env("DTMFD_ENDED_TTL", "90m"), []string{"-ended-ttl", "8h"}, 8 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tt.args, tt.env, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if c.EndedTTL != tt.want {
				t.Errorf("EndedTTL = %v, want %v", c.EndedTTL, tt.want)
			}
		})
	}
}

func TestConfigRejectsEndedTTLOfZero(t *testing.T) {
	t.Parallel()
	_, err := parseConfig(nil, env("DTMFD_ENDED_TTL", "0s"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "DTMFD_ENDED_TTL") {
		t.Errorf("error = %v, want it to name DTMFD_ENDED_TTL", err)
	}
}
