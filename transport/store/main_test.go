package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the package's tests against one Redis server, stopped
// once they end, and fails them if any goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withServer{m})
}

// withServer stops the shared Redis server, if a test started it, before
// the leak check looks for goroutines left behind.
type withServer struct{ m *testing.M }

func (w withServer) Run() int {
	defer stopServer()
	return w.m.Run()
}
