package actors

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestRegistryCompactionReachesCmapsMaps(t *testing.T) {
	// Fails when a new concurrent-map moves the map compactRegistry
	// swaps: the registry would then keep its buckets after a burst.
	if !registryCompactable() {
		t.Fatal("cmap.ConcurrentMapShared has no items map at a known offset; registry compaction is off")
	}
}

func TestCompactRegistryGivesMemoryBackAndKeepsEveryActor(t *testing.T) {
	const burst, kept = 100000, 100
	system := actor.NewActorSystem()
	defer system.Shutdown()
	reg := system.ProcessRegistry
	props := actor.PropsFromFunc(func(actor.Context) {})

	// Entries made straight in the registry, so that the heap figures
	// are the registry's alone.
	live := make([]*actor.PID, kept)
	for i := range live {
		pid, err := system.Root.SpawnNamed(props, "live-"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		live[i] = pid
	}
	base := liveHeap()
	burstPIDs := make([]*actor.PID, burst)
	for i := range burstPIDs {
		burstPIDs[i], _ = reg.Add(system.DeadLetter, "call-"+strconv.Itoa(i))
	}
	for i, pid := range burstPIDs {
		reg.Remove(pid)
		burstPIDs[i] = nil
	}
	left := liveHeap()

	// Spawns and lookups go on while the registry is copied; under the
	// race detector this checks that the copy takes the shards' locks.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			pid, err := system.Root.SpawnNamed(props, "during-"+strconv.Itoa(i))
			if err != nil {
				t.Error(err)
				return
			}
			if _, ok := reg.Get(pid); !ok {
				t.Errorf("actor %s not found while the registry was compacted", pid.Id)
			}
			system.Root.Stop(pid)
		}
	}()
	copied := compactRegistry(reg)
	wg.Wait()
	after := liveHeap()

	if copied < kept {
		t.Errorf("compaction copied %d entries, want at least the %d live actors", copied, kept)
	}
	for _, pid := range live {
		if _, ok := reg.Get(pid); !ok {
			t.Fatalf("actor %s lost from the registry by compaction", pid.Id)
		}
	}
	if _, ok := reg.GetLocal("call-7"); ok {
		t.Fatal("a removed entry is back in the registry")
	}
	held, stays := int64(left)-int64(base), int64(after)-int64(base)
	if held < 1<<20 {
		t.Fatalf("%d entries added and removed left %d bytes; the registry no longer keeps its buckets, and the compaction may go", burst, held)
	}
	if stays > held/5 {
		t.Errorf("after compaction the registry still holds %d of the %d bytes its removed entries left behind", stays, held)
	}
}

// Once a burst of calls has mostly ended, the engine compacts the
// registry on its own, and the actors still running are still found.
func TestEngineCompactsTheRegistryAfterABurst(t *testing.T) {
	const calls = 4 * shrinkFloor
	h := newHarness(t, &memSink{}, nil)
	defer h.eng.Close()
	passes := make(chan int, 16)
	h.eng.sh.registry.done = func(copied int) { passes <- copied }

	for i := range calls {
		h.press("c"+strconv.Itoa(i), "2")
	}
	for i := range calls {
		h.press("c"+strconv.Itoa(i), "A1")
	}
	deadline := time.After(30 * time.Second)
	for len(h.sink.got()) < calls {
		select {
		case <-deadline:
			t.Fatalf("%d of %d calls written", len(h.sink.got()), calls)
		case <-time.After(10 * time.Millisecond):
		}
	}

	select {
	case copied := <-passes:
		if copied >= calls {
			t.Errorf("a pass copied %d entries, more than the %d calls at their peak", copied, calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the registry was never compacted after the calls ended")
	}
	// The writer and its workers are registry entries that outlive the
	// calls; a write after the compaction still goes through them.
	h.press("after", "2A1")
	for deadline := time.Now().Add(10 * time.Second); len(h.sink.got()) < calls+1; {
		if time.Now().After(deadline) {
			t.Fatal("no write for a call made after the compaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
