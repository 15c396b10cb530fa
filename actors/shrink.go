package actors

// A Go map keeps the buckets it grew to after its entries are deleted.
// The ingress's and the writer's maps follow the open calls and the
// pending writes, so after a burst of 100,000 calls they would hold
// about 10 MiB that no call uses, for the life of the process.
// shrinkable copies such a map into a fresh one once it holds no more
// than a quarter of the most it held: each entry is copied at most once
// per three deleted, so the cost per call stays constant.

// shrinkFloor is the peak under which a map is left as it is: copying
// it would save less than it costs.
const shrinkFloor = 1024

// shrinkable is a map's high-water mark since it was last copied.
type shrinkable struct {
	peak int
	// copies counts the copies made, for those whose own memory follows
	// the same map.
	copies int
}

// deleted deletes k from m and returns m, or a smaller copy of m.
func deleted[K comparable, V any](s *shrinkable, m map[K]V, k K) map[K]V {
	s.peak = max(s.peak, len(m))
	delete(m, k)
	return shrunk(s, m)
}

// shrunk returns m, or a copy of m sized for what it holds now, once m
// has fallen to a quarter of its peak.
func shrunk[K comparable, V any](s *shrinkable, m map[K]V) map[K]V {
	if s.peak < shrinkFloor || len(m) > s.peak/4 {
		return m
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	s.peak = len(c)
	s.copies++
	return c
}
