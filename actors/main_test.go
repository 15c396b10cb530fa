package actors

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/dtmfd/dtmfd/actors/leakcheck"
)

// TestMain fails the package's tests if any goroutine outlives them. The
// in-memory cluster provider's TTL loop, used only by tests, ranges over
// a ticker that stopping never closes: it is the library's, not a leak of
// dtmfd's.
func TestMain(m *testing.M) {
	leakcheck.Main(m, goleak.IgnoreTopFunction(
		"github.com/asynkron/protoactor-go/cluster/clusterproviders/test.(*Provider).startTtlReport.func1"))
}
