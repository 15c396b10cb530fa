package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// Config configures an Engine. Zero values take the defaults named on
// each field.
type Config struct {
	// Flow returns the IVR flow a new call starts on. It is read once per
	// call, so a reloaded flow applies to calls that start afterwards.
	Flow func() *ivrspec.Flow
	// Sink delivers decisions to the platform.
	Sink Sink
	// DeadLetters records a write given up on. Nil only logs it.
	DeadLetters func(DeadLetter) error
	// Journal, when set, holds every decision until it is delivered.
	Journal Journal

	// Writers is the number of writes in flight at once (64). Delivery
	// keeps up while writes per second × the platform's response time
	// stays under it.
	Writers int
	// WriteDeadline bounds the retries of one write, from its decision (2m).
	WriteDeadline time.Duration
	// MaxBacklog bounds the interactions waiting to be written (100000);
	// past it a decision goes straight to the dead letters.
	MaxBacklog int
	// MaxCalls bounds the open calls (200000); past it new calls are
	// refused.
	MaxCalls int
	// MaxKeys bounds the keys one call may press (256).
	MaxKeys int
	// MaxIdle ends a call with no accepted key for this long (30m), for
	// flows that retry forever.
	MaxIdle time.Duration
	// EndedTTL is how long an ended call's id is remembered so that its
	// late keys are refused (4h): a caller may go on pressing keys while
	// talking to an agent, and each of those would otherwise start the
	// call again and write a timeout over its decision. Keep it longer
	// than a call: a key after it (up to an eighth more) starts a new
	// call. Each id remembered costs about 100 bytes.
	EndedTTL time.Duration

	// OnCall, when set, is told of every step of every call.
	OnCall func(CallEvent)
	// OnWrite, when set, is told of every delivered or abandoned write.
	OnWrite func(WriteEvent)

	Clock   Clock
	Logger  *slog.Logger
	Metrics *metrics.Metrics

	// ownClock is the SystemClock made for this engine when Clock was
	// nil; Close drops its pending timers.
	ownClock *SystemClock
}

// CallEvent is one step of one call, for observers such as the web keypad
// and the flow-test harness. Keys and digits of sensitive nodes are masked.
type CallEvent struct {
	CallID  string
	Node    string
	Key     string
	Outcome string
	Digits  string
	NoInput int
	NoMatch int
	Timer   ivrspec.Timer
	Prompt  string
	// Decision is set on the call's last event.
	Decision *ivrspec.Decision
	At       time.Time
}

// WriteEvent is a write delivered (Err nil) or given up on.
type WriteEvent struct {
	InteractionID string
	Variables     []ivrspec.Variable
	Err           error
	Latency       time.Duration
}

// shared is what every actor of an engine reads; it never changes after
// Start.
type shared struct {
	root    *actor.RootContext
	ingress *actor.PID
	writer  *actor.PID
	clock   Clock
	log     *slog.Logger
	metrics *metrics.Metrics

	maxCalls      int
	maxKeys       int
	maxBacklog    int
	maxIdle       time.Duration
	endedTTL      time.Duration
	writeDeadline time.Duration

	deadLetters func(DeadLetter) error
	journal     Journal
	// store and member are set in a cluster: calls save their state in
	// store, and member names this process in the claims it makes.
	store  Store
	member string
	// pool runs the ingress and the call actors on a single node.
	pool *poolDispatcher
	// writePool runs the writer and its workers, a goroutine each.
	writePool    *poolDispatcher
	onCall       func(CallEvent)
	observeWrite func(id string, vars []ivrspec.Variable, err error, latency time.Duration)
	// registry gives the process registry's memory back once the open
	// calls have fallen to a quarter of their peak.
	registry *registryCompactor
	ownClock *SystemClock
}

// Engine is dtmfd's actor system: the ingress, one actor per call, and the
// writer pool.
type Engine struct {
	system  *actor.ActorSystem
	sh      *shared
	cancel  context.CancelFunc
	ingress *actor.PID
	writer  *actor.PID
	// node is the engine's cluster membership; nil on a single node.
	node *node
}

// Start builds the actor system and its actors.
func Start(cfg Config) (*Engine, error) {
	if cfg.Flow == nil || cfg.Sink == nil {
		return nil, errors.New("start engine: Flow and Sink are required")
	}
	cfg = withDefaults(cfg)

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return libraryLogger(cfg.Logger)
	}))
	sh := newShared(cfg, system)
	sh.pool = newPoolDispatcher(runtime.GOMAXPROCS(0))
	workCtx, cancel := context.WithCancel(context.Background())
	return spawnEngine(system, sh, cfg, workCtx, cancel, newIngress(sh, cfg.Flow))
}

func newShared(cfg Config, system *actor.ActorSystem) *shared {
	sh := &shared{
		root:          system.Root,
		clock:         cfg.Clock,
		log:           cfg.Logger,
		metrics:       cfg.Metrics,
		maxCalls:      cfg.MaxCalls,
		maxKeys:       cfg.MaxKeys,
		maxBacklog:    cfg.MaxBacklog,
		maxIdle:       cfg.MaxIdle,
		endedTTL:      cfg.EndedTTL,
		writeDeadline: cfg.WriteDeadline,
		onCall:        cfg.OnCall,
		deadLetters:   cfg.DeadLetters,
		journal:       cfg.Journal,
		registry:      &registryCompactor{reg: system.ProcessRegistry},
		ownClock:      cfg.ownClock,
	}
	if cfg.OnWrite != nil {
		sh.observeWrite = func(id string, vars []ivrspec.Variable, err error, lat time.Duration) {
			cfg.OnWrite(WriteEvent{InteractionID: id, Variables: append([]ivrspec.Variable(nil), vars...),
				Err: err, Latency: lat})
		}
	}
	return sh
}

// spawnEngine spawns the writer pool and the ingress in.
func spawnEngine(system *actor.ActorSystem, sh *shared, cfg Config, workCtx context.Context,
	cancel context.CancelFunc, in actor.Actor) (*Engine, error) {
	// The ingress and the writer take bursts of a whole busy minute's
	// keys and decisions. protoactor's default mailbox is a ring buffer
	// that keeps the size of the largest burst for good; the lock-free
	// one is a linked list that gives its memory back as it empties.
	mailbox := actor.WithMailbox(actor.UnboundedLockfree())
	// The writer and each of its workers get a long-lived goroutine.
	// On protoactor's default dispatcher every attempt started a
	// goroutine, whose stack then grew for the JSON encoding, the HTTP
	// request and the log line: growing stacks took 6% of all CPU in
	// profiles at 20,000 keys/s.
	sh.writePool = newPoolDispatcher(cfg.Writers + 1)
	w := newWriter(sh, cfg.Sink, workCtx, cfg.Writers)
	writer, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return w },
		mailbox, actor.WithDispatcher(sh.writePool)), "writer")
	if err != nil {
		cancel()
		sh.writePool.stop()
		return nil, fmt.Errorf("spawn writer: %w", err)
	}
	sh.writer = writer

	opts := []actor.PropsOption{mailbox}
	if sh.pool != nil {
		opts = append(opts, actor.WithDispatcher(sh.pool))
	}
	props := actor.PropsFromProducer(func() actor.Actor { return in }, opts...)
	ingress, err := system.Root.SpawnNamed(props, "calls")
	if err != nil {
		cancel()
		sh.writePool.stop()
		return nil, fmt.Errorf("spawn ingress: %w", err)
	}
	sh.ingress = ingress

	return &Engine{system: system, sh: sh, cancel: cancel, ingress: ingress, writer: writer}, nil
}

func withDefaults(c Config) Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Writers, 64)
	def(&c.MaxBacklog, 100000)
	def(&c.MaxCalls, 200000)
	def(&c.MaxKeys, 256)
	defDur(&c.WriteDeadline, 2*time.Minute)
	defDur(&c.MaxIdle, 30*time.Minute)
	defDur(&c.EndedTTL, 4*time.Hour)
	if c.Clock == nil {
		c.ownClock = &SystemClock{}
		c.Clock = c.ownClock
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// libraryLogger is the logger protoactor-go itself writes to: dtmfd's own
// handler, one level quieter, since the library logs routine events
// (actor system started, dead letters) at Info.
func libraryLogger(l *slog.Logger) *slog.Logger {
	return slog.New(quieter{l.Handler()}).With("lib", "protoactor")
}

type quieter struct{ slog.Handler }

func (q quieter) Enabled(ctx context.Context, level slog.Level) bool {
	return q.Handler.Enabled(ctx, level-4)
}

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	r.Level -= 4
	return q.Handler.Handle(ctx, r)
}

func (q quieter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quieter{q.Handler.WithAttrs(attrs)}
}

func (q quieter) WithGroup(name string) slog.Handler {
	return quieter{q.Handler.WithGroup(name)}
}

// Begin starts a call before its first key. It never blocks.
func (e *Engine) Begin(b *Begin) {
	e.system.Root.Send(e.ingress, b)
}

// Digit hands a key to the ingress. It never blocks.
func (e *Engine) Digit(d *Digit) {
	e.system.Root.Send(e.ingress, d)
}

// Resume hands decisions left over from an earlier run (read from the
// journal) to the writer pool. They stay journaled until delivered.
func (e *Engine) Resume(ws []*Write) {
	for _, w := range ws {
		e.system.Root.Send(e.writer, w)
	}
}

// Step runs one platform-driven turn of a call and returns what the
// platform should do next. The call's actor is the same kind the stream
// uses; a call's first Step starts it.
func (e *Engine) Step(ctx context.Context, s *Step) (*StepReply, error) {
	res, err := e.ask(ctx, e.ingress, s)
	if err != nil {
		return nil, fmt.Errorf("step call %s: %w", s.CallID, err)
	}
	switch r := res.(type) {
	case *StepReply:
		return r, nil
	case error:
		return nil, r
	}
	return nil, fmt.Errorf("step call %s: unexpected reply %T", s.CallID, res)
}

// Ping answers when the ingress and the writer both answer, so a stuck
// actor system fails liveness.
func (e *Engine) Ping(ctx context.Context) error {
	_, err := e.Stats(ctx)
	return err
}

// Stats returns the open calls and the write backlog.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	calls, err := e.ask(ctx, e.ingress, &statsRequest{})
	if err != nil {
		return s, fmt.Errorf("ask ingress: %w", err)
	}
	backlog, err := e.ask(ctx, e.writer, &statsRequest{})
	if err != nil {
		return s, fmt.Errorf("ask writer: %w", err)
	}
	s.OpenCalls, s.Backlog = calls.(int), backlog.(int)
	return s, nil
}

func (e *Engine) ask(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	return ask(ctx, e.system.Root, pid, msg)
}

// ask sends msg to pid and waits for its answer until ctx's deadline, or
// for a second without one.
func ask(ctx context.Context, root *actor.RootContext, pid *actor.PID, msg any) (any, error) {
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	return root.RequestFuture(pid, msg, timeout).Result()
}

// Drain shuts the engine down without losing a decision: it refuses new
// calls, lets open calls decide until callsBy (a cluster member hands them
// to the other members instead), then delivers every pending write until
// ctx ends. Whatever is still undelivered then stays in the
// journal, or without one is recorded as a dead letter. The engine takes
// no more work afterwards.
func (e *Engine) Drain(ctx context.Context, callsBy time.Time) error {
	if e.node != nil {
		// A member hands its calls to the others first: they go on
		// there, and only the writes this member holds are left to it.
		hctx, cancel := context.WithDeadline(ctx, callsBy)
		err := e.node.handOver(hctx)
		cancel()
		if err != nil {
			e.sh.log.Warn("calls not handed over cleanly; the others take them when they notice",
				"error", err)
		}
	}
	callsCtx, cancel := context.WithDeadline(ctx, callsBy)
	_, err := e.ask(callsCtx, e.ingress, &drainRequest{})
	cancel()
	if err != nil {
		n, _ := e.ask(ctx, e.ingress, &statsRequest{})
		e.sh.log.Warn("calls still open at shutdown end without a decision", "calls", n)
	}

	_, err = e.ask(ctx, e.writer, &flushRequest{final: true})
	if err == nil {
		return nil
	}
	e.cancel()
	e.system.Root.Send(e.writer, &abandonRequest{reason: "shutdown grace period ended before delivery"})
	flush := e.system.Root.RequestFuture(e.writer, &flushRequest{final: true}, time.Second)
	if _, ferr := flush.Result(); ferr != nil {
		return fmt.Errorf("drain writer: %w", ferr)
	}
	return fmt.Errorf("drain writer: %w", err)
}

// closeCallsWait bounds how long Close waits for the call actors to stop.
const closeCallsWait = 5 * time.Second

// Close stops every actor and the actor system. Call Drain first to keep
// pending writes.
func (e *Engine) Close() {
	e.cancel()
	if e.node != nil {
		e.node.leave()
	}
	root := e.system.Root
	if e.node == nil {
		// The calls are not the ingress's children, so stopping it
		// would not wait for them: stop them first and wait.
		ctx, cancel := context.WithTimeout(context.Background(), closeCallsWait)
		if _, err := e.ask(ctx, e.ingress, &stopCallsRequest{}); err != nil {
			e.sh.log.Warn("calls still stopping when the engine closed", "error", err)
		}
		cancel()
	}
	_ = root.StopFuture(e.ingress).Wait()
	_ = root.StopFuture(e.writer).Wait()
	if e.node == nil {
		// Leaving the cluster shut the actor system down already.
		e.system.Shutdown()
	}
	if e.sh.pool != nil {
		e.sh.pool.stop()
	}
	e.sh.writePool.stop()
	if e.sh.ownClock != nil {
		// A pending timer's func names an actor of this engine, and
		// through it the whole actor system: left armed, the ended-call
		// sweep's timer kept a closed engine's memory for hours.
		e.sh.ownClock.stop()
	}
}
