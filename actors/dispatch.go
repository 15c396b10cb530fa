package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// keptQueue is the most room, in mailbox runs, a dispatcher's queue keeps
// once it has emptied; a burst's larger array is given back.
const keptQueue = 4096

// poolDispatcher runs actor mailboxes on a few long-lived goroutines.
// protoactor's default dispatcher starts a goroutine each time a mailbox
// gets work; with one actor per call and a key every few milliseconds per
// call, that goroutine creation and the stack growth of each new
// goroutine took a tenth of the ingress path's CPU in profiles.
//
// Its queue has no bound, so Schedule never blocks and never starts a
// goroutine: an earlier bounded queue fell back to a goroutine per mailbox
// when full, and in a burst of 100,000 calls the runtime kept those
// goroutines' descriptors for good, 1.5 MiB of heap that never came back.
// What waits here is one entry per busy actor, each already holding its
// messages in its own mailbox.
//
// Only actors that never block belong here (the ingress and the calls),
// or as many goroutines as actors (the writer and its workers): an actor
// that waits on the network holds a goroutine.
type poolDispatcher struct {
	mu    sync.Mutex
	ready sync.Cond // signalled when the queue gains a run or the pool stops
	// queue holds the runs not yet taken; those before head are taken.
	queue  []func()
	head   int
	closed bool
}

func newPoolDispatcher(workers int) *poolDispatcher {
	d := &poolDispatcher{}
	d.ready.L = &d.mu
	for range workers {
		go d.run()
	}
	return d
}

func (d *poolDispatcher) run() {
	for {
		fn, ok := d.next()
		if !ok {
			return
		}
		fn()
	}
}

// next waits for the oldest run and takes it; false once the pool has
// stopped and nothing is left.
func (d *poolDispatcher) next() (func(), bool) {
	d.mu.Lock()
	defer d.mu.Unlock()

	for d.head == len(d.queue) {
		if d.closed {
			return nil, false
		}
		d.ready.Wait()
	}
	fn := d.queue[d.head]
	d.queue[d.head] = nil
	d.head++
	if d.head == len(d.queue) {
		d.head = 0
		d.queue = d.queue[:0]
		if cap(d.queue) > keptQueue {
			d.queue = nil
		}
	}
	return fn, true
}

// Schedule implements actor.Dispatcher. It never blocks.
func (d *poolDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		go fn()
		return
	}
	if len(d.queue) == cap(d.queue) && d.head > 0 {
		// Move what is left to the front rather than grow the array
		// under a queue that never quite empties.
		n := copy(d.queue, d.queue[d.head:])
		clear(d.queue[n:])
		d.queue, d.head = d.queue[:n], 0
	}
	d.queue = append(d.queue, fn)
	d.mu.Unlock()
	d.ready.Signal()
}

// Throughput implements actor.Dispatcher: messages an actor handles
// before it yields its goroutine, as the default dispatcher does.
func (d *poolDispatcher) Throughput() int { return 300 }

// stop ends the pool's goroutines once they have run what is queued.
// Mailboxes scheduled afterwards run on goroutines of their own.
func (d *poolDispatcher) stop() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.ready.Broadcast()
}

var _ actor.Dispatcher = (*poolDispatcher)(nil)
