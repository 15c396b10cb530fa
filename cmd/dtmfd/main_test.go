package main

import (
	"os"
	"testing"

	"github.com/dtmfd/dtmfd/actors/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them, and
// removes the dtmfd binary the process tests built.
func TestMain(m *testing.M) {
	code := leakcheck.Run(m)
	removeBinary()
	os.Exit(code)
}
