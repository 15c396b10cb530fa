package actors

import (
	"strconv"
	"sync"
	"testing"

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
