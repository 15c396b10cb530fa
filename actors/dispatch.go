package actors

import "github.com/asynkron/protoactor-go/actor"

// poolDispatcher runs actor mailboxes on a few long-lived goroutines.
// protoactor's default dispatcher starts a goroutine each time a mailbox
// gets work; with one actor per call and a key every few milliseconds per
// call, that goroutine creation and the stack growth of each new
// goroutine took a tenth of the ingress path's CPU in profiles. Schedule
// never blocks: when the queue is full, it falls back to a goroutine of
// its own, so a burst costs what the default costs and no more.
//
// Only actors that never block belong here (the ingress and the calls):
// an actor that waits on the network would hold a pool goroutine.
type poolDispatcher struct {
	work chan func()
	done chan struct{}
}

func newPoolDispatcher(workers int) *poolDispatcher {
	d := &poolDispatcher{work: make(chan func(), 8192), done: make(chan struct{})}
	for range workers {
		go d.run()
	}
	return d
}

func (d *poolDispatcher) run() {
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.done:
			return
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *poolDispatcher) Schedule(fn func()) {
	select {
	case <-d.done:
		go fn()
		return
	default:
	}
	select {
	case d.work <- fn:
	default:
		go fn()
	}
}

// Throughput implements actor.Dispatcher: messages an actor handles
// before it yields its goroutine, as the default dispatcher does.
func (d *poolDispatcher) Throughput() int { return 300 }

// stop ends the pool's goroutines, once its actors have stopped.
// Mailboxes scheduled afterwards run on goroutines of their own.
func (d *poolDispatcher) stop() {
	close(d.done)
}

var _ actor.Dispatcher = (*poolDispatcher)(nil)
