package actors

import (
	"runtime"
	"strconv"
	"testing"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestDeletedMapGivesItsMemoryBack(t *testing.T) {
	const n, kept = 100000, 10
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "call-" + strconv.Itoa(i)
	}

	base := liveHeap()
	var s shrinkable
	m := map[string]int{}
	for i, k := range keys {
		m[k] = i
	}
	full := liveHeap()
	for _, k := range keys[kept:] {
		m = deleted(&s, m, k)
	}
	after := liveHeap()

	if len(m) != kept {
		t.Fatalf("map holds %d entries, want %d", len(m), kept)
	}
	for i, k := range keys[:kept] {
		if m[k] != i {
			t.Errorf("m[%q] = %d after deletes, want %d", k, m[k], i)
		}
	}
	grown, left := int64(full)-int64(base), int64(after)-int64(base)
	if left > grown/10 {
		t.Errorf("map of %d entries kept %d of the %d bytes it grew by", kept, left, grown)
	}
	runtime.KeepAlive(keys)
}

func TestSmallMapIsNotCopied(t *testing.T) {
	var s shrinkable
	m := map[int]int{}
	for i := range shrinkFloor - 1 {
		m[i] = i
	}
	before := m
	for i := range shrinkFloor - 2 {
		m = deleted(&s, m, i)
	}
	m[-1] = -1
	if before[-1] != -1 {
		t.Error("a map under shrinkFloor entries was replaced by a copy")
	}
}
