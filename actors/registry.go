package actors

import (
	"reflect"
	"sync/atomic"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"
	cmap "github.com/orcaman/concurrent-map"
)

// protoactor's process registry, where every actor is named, is 1024
// concurrent maps of cmap.SHARD_COUNT Go maps each: 32,768 maps by
// default. A Go map keeps the buckets of its largest size, so a burst of
// calls leaves every one of them holding buckets once the calls are
// gone: 11 MiB of heap after 100,000 calls, more than the rest of an
// idle dtmfd. One map per registry bucket still spreads the registry's
// locks 1024 ways, far more than the cores that contend for them.
//
// The count is read on every lookup, so it is set here, before an actor
// system makes its registry.
func init() {
	cmap.SHARD_COUNT = 1
}

// Even one map per bucket keeps 4.5 MiB after 100,000 calls have come
// and gone. cmap has no way to give a map's buckets back, so
// compactRegistry copies each shard's map into a fresh one under that
// shard's write lock, the lock every cmap method takes before it reads
// or writes the map, and so no lookup sees the swap half done.
//
// The map is an unexported field of cmap.ConcurrentMapShared; shardItems
// reaches it only after checking, once, that the field is where this
// code expects it. If a new cmap moved it, compaction is off and the
// registry merely keeps its buckets, as it would without this code.
var shardItemsOffset = func() uintptr {
	f, ok := reflect.TypeFor[cmap.ConcurrentMapShared]().FieldByName("items")
	if !ok || f.Type != reflect.TypeFor[map[string]interface{}]() {
		return ^uintptr(0)
	}
	return f.Offset
}()

// registryCompactable reports whether compactRegistry can reach cmap's
// maps.
func registryCompactable() bool { return shardItemsOffset != ^uintptr(0) }

// shardItems returns a pointer to the shard's map. The caller holds the
// shard's write lock.
func shardItems(sh *cmap.ConcurrentMapShared) *map[string]interface{} {
	return (*map[string]interface{})(unsafe.Add(unsafe.Pointer(sh), shardItemsOffset))
}

// compactRegistry copies every map of the registry into one sized for
// the actors it names now, and returns how many entries it copied. Each
// shard is locked only while its own map is copied, so spawns and
// lookups elsewhere go on meanwhile.
func compactRegistry(reg *actor.ProcessRegistryValue) int {
	if !registryCompactable() {
		return 0
	}
	copied := 0
	for _, bucket := range reg.LocalPIDs.LocalPIDs {
		for _, sh := range bucket {
			sh.Lock()
			items := shardItems(sh)
			fresh := make(map[string]interface{}, len(*items))
			for k, v := range *items {
				fresh[k] = v
			}
			*items = fresh
			copied += len(fresh)
			sh.Unlock()
		}
	}
	return copied
}

// registryCompactor runs compactRegistry off the caller's goroutine, one
// pass at a time: a pass asked for while one runs is dropped, since the
// running one already gives back what the caller wanted freed.
type registryCompactor struct {
	reg     *actor.ProcessRegistryValue
	running atomic.Bool
	// done, when set, is told how many entries each pass copied; tests
	// watch the passes through it.
	done func(copied int)
}

// compact starts a pass unless one is running.
func (c *registryCompactor) compact() {
	if c == nil || !c.running.CompareAndSwap(false, true) {
		return
	}
	go func() {
		n := compactRegistry(c.reg)
		c.running.Store(false)
		if c.done != nil {
			c.done(n)
		}
	}()
}
