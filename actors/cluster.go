package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dtmfd/dtmfd/actors/clusterpb"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// The grain kinds dtmfd registers.
const (
	// KindCall is one call, identified by its call id.
	KindCall = "call"
	// KindSingleton is the one activation per cluster that holds a
	// connection only one member may hold, such as the voice stream.
	KindSingleton = "singleton"
)

// ClusterConfig makes an Engine one member of a Proto.Actor cluster: its
// calls become grains placed on the members by rendezvous hashing, and
// their state lives in Store so that any member can carry a call on.
type ClusterConfig struct {
	// Name is the cluster's name; members join clusters of their name.
	Name string
	// Host and Port are where the member listens for other members
	// (port 0 picks a free one). AdvertisedHost, when set, is the address
	// the others dial, such as a pod's IP.
	Host           string
	Port           int
	AdvertisedHost string
	// Provider finds the other members (Kubernetes, or the test provider).
	Provider cluster.ClusterProvider
	// Store keeps the calls' state. Required.
	Store Store

	// Singleton, when set, runs on exactly one member at a time until its
	// context ends; SingletonKey names it (the tenant). Every member asks
	// for it every PokeInterval (5s), so it is started again elsewhere
	// when its member leaves.
	Singleton    func(ctx context.Context) error
	SingletonKey string
	PokeInterval time.Duration

	// WakeInterval is how often this member wakes calls whose timer is
	// overdue, as when their member left (1s).
	WakeInterval time.Duration
	// HeartbeatExpiration is how long a silent member stays in the
	// cluster (20s, the library's default).
	HeartbeatExpiration time.Duration
	// StateTTL is how long a call's state is kept after its last change
	// (1h more than the engine's MaxIdle).
	StateTTL time.Duration
}

// node is an engine's membership of a cluster.
type node struct {
	cl     *cluster.Cluster
	cfg    ClusterConfig
	store  Store
	flow   func() *ivrspec.Flow
	lookup *lookup
	cancel context.CancelFunc
	done   chan struct{}
	// stopped stops the member's loops once; left leaves the cluster once.
	stopped, left sync.Once
}

// attemptTimeout bounds one try of a request to a grain; a try lost with
// a member is made again on the grain's new owner.
const attemptTimeout = 3 * time.Second

// StartCluster builds an engine that is a member of a cluster: it joins
// the cluster, and routes every call it is given to the call's grain,
// wherever that lives.
func StartCluster(cfg Config, cc ClusterConfig) (*Engine, error) {
	if cfg.Flow == nil || cfg.Sink == nil {
		return nil, errors.New("start cluster engine: Flow and Sink are required")
	}
	if cc.Store == nil || cc.Provider == nil {
		return nil, errors.New("start cluster engine: Store and Provider are required")
	}
	cfg = withDefaults(cfg)
	cc = clusterDefaults(cc, cfg)

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return libraryLogger(cfg.Logger)
	}))
	sh := newShared(cfg, system)
	sh.store = cc.Store
	sh.member = system.ID

	n := &node{cfg: cc, store: cc.Store, flow: cfg.Flow, done: make(chan struct{})}
	n.cl = cluster.New(system, n.config(cc, sh, cfg))

	workCtx, cancel := context.WithCancel(context.Background())
	eng, err := spawnEngine(system, sh, cfg, workCtx, cancel, newClusterIngress(sh, n))
	if err != nil {
		return nil, err
	}

	// Starting the member sets the actor system's address, which every
	// spawn reads: the writer and the ingress must have spawned what they
	// spawn at start before it.
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = eng.Ping(pctx)
	pcancel()
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("start cluster engine: %w", err)
	}
	eng.node = n
	n.cl.StartMember()
	ctx, stop := context.WithCancel(context.Background())
	n.cancel = stop
	go n.loop(ctx, sh)
	sh.log.Info("joined cluster", "cluster", cc.Name, "member", system.ID, "address", system.Address())
	return eng, nil
}

func clusterDefaults(cc ClusterConfig, cfg Config) ClusterConfig {
	if cc.PokeInterval <= 0 {
		cc.PokeInterval = 5 * time.Second
	}
	if cc.WakeInterval <= 0 {
		cc.WakeInterval = time.Second
	}
	if cc.HeartbeatExpiration <= 0 {
		cc.HeartbeatExpiration = 20 * time.Second
	}
	if cc.StateTTL <= 0 {
		cc.StateTTL = cfg.MaxIdle + time.Hour
	}
	if cc.Name == "" {
		cc.Name = "dtmfd"
	}
	return cc
}

func (n *node) config(cc ClusterConfig, sh *shared, cfg Config) *cluster.Config {
	var opts []remote.ConfigOption
	if cc.AdvertisedHost != "" {
		opts = append(opts, remote.WithAdvertisedHost(fmt.Sprintf("%s:%d", cc.AdvertisedHost, cc.Port)))
	}
	rc := remote.Configure(cc.Host, cc.Port, opts...)

	flow := cfg.Flow
	calls := cluster.NewKind(KindCall, actor.PropsFromProducer(func() actor.Actor {
		return &callGrain{sh: sh, flow: flow, ttl: cc.StateTTL}
	}, actor.WithSupervisor(stopOnPanic)))
	kinds := []*cluster.Kind{calls}
	if cc.Singleton != nil {
		kinds = append(kinds, cluster.NewKind(KindSingleton, actor.PropsFromProducer(func() actor.Actor {
			return &singleton{run: cc.Singleton, log: sh.log}
		})))
	}
	n.lookup = newLookup(sh.metrics.Members)
	return cluster.Configure(cc.Name, cc.Provider, n.lookup, rc,
		cluster.WithKinds(kinds...),
		cluster.WithHeartbeatExpiration(cc.HeartbeatExpiration),
		cluster.WithRequestTimeout(attemptTimeout))
}

// request sends msg to a grain and returns its answer, trying again on
// the grain's current owner until ctx ends: a try is lost when the
// grain's member leaves or the grain moves.
func (n *node) request(ctx context.Context, kind, id string, msg proto.Message) (any, error) {
	root := n.cl.ActorSystem.Root
	wait := 20 * time.Millisecond
	for {
		res, err := n.try(root, kind, id, msg)
		if err == nil {
			return res, nil
		}
		n.cl.PidCache.Remove(id, kind)

		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("request %s %s: %w (last: %w)", kind, id, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

var (
	errNoOwner = errors.New("no member owns the grain")
	errMoved   = errors.New("call moved to another activation")
)

func (n *node) try(root *actor.RootContext, kind, id string, msg proto.Message) (any, error) {
	pid, ok := n.cl.PidCache.Get(id, kind)
	if !ok || pid == nil {
		pid = n.cl.Get(id, kind)
		if pid == nil {
			return nil, errNoOwner
		}
		n.cl.PidCache.Set(id, kind, pid)
	}
	res, err := root.RequestFuture(pid, msg, attemptTimeout).Result()
	if err != nil {
		return nil, err
	}
	if _, moved := res.(*clusterpb.Moved); moved {
		return nil, errMoved
	}
	return res, nil
}

// loop pokes the singleton and wakes overdue calls until ctx ends.
func (n *node) loop(ctx context.Context, sh *shared) {
	defer close(n.done)
	poke := time.NewTicker(n.cfg.PokeInterval)
	wake := time.NewTicker(n.cfg.WakeInterval)
	defer poke.Stop()
	defer wake.Stop()
	if n.cfg.Singleton != nil {
		go n.poke(ctx, sh)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-poke.C:
			if n.cfg.Singleton != nil {
				n.poke(ctx, sh)
			}
		case <-wake.C:
			n.wake(ctx, sh)
		}
	}
}

func (n *node) poke(ctx context.Context, sh *shared) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.PokeInterval)
	defer cancel()
	_, err := n.request(ctx, KindSingleton, n.cfg.SingletonKey, &clusterpb.Poke{})
	if err != nil && ctx.Err() == nil {
		sh.log.Warn("singleton did not answer", "error", err)
	}
}

// wakeGrace is how long past its deadline a call's timer may be before
// another member wakes the call: a live call fires its own timer.
const wakeGrace = 2 * time.Second

// wake re-activates calls whose timer is overdue: their member left, and
// with it the timer, or a decision they made was never marked delivered.
func (n *node) wake(ctx context.Context, sh *shared) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	ids, err := n.store.Overdue(sctx, sh.clock.Now().Add(-wakeGrace), 256)
	cancel()
	if err != nil {
		sh.log.Warn("overdue calls not read from the store", "error", err)
		return
	}
	for _, id := range ids {
		rctx, cancel := context.WithTimeout(ctx, 2*attemptTimeout)
		_, err := n.request(rctx, KindCall, id, &clusterpb.Wake{})
		cancel()
		if err != nil && ctx.Err() == nil {
			sh.log.Warn("overdue call not woken", "callId", id, "error", err)
		}
	}
}

// stopLoops stops waking overdue calls and asking for the singleton.
func (n *node) stopLoops() {
	n.stopped.Do(func() {
		n.cancel()
		<-n.done
	})
}

// handOver moves this member's work to the others while its actors keep
// running, so that a leaving member can still deliver the writes it
// holds: gossip tells the others it left (they drop it from their
// topology), it places calls only on the others, and it stops its grains,
// whose state is in the store; the stream's singleton starts again
// elsewhere. It keeps following the topology meanwhile, so that what it
// still sends reaches the grains' current owners.
func (n *node) handOver(ctx context.Context) error {
	n.stopLoops()
	n.cl.Gossip.SetState(cluster.GracefullyLeftKey, &emptypb.Empty{})
	if err := n.lookup.retire(ctx); err != nil {
		return fmt.Errorf("stop grains: %w", err)
	}
	return nil
}

// leave stops the member's loops and leaves the cluster gracefully: its
// grains are handed over at once.
func (n *node) leave() {
	n.left.Do(func() {
		n.stopLoops()
		n.cl.Shutdown(true)
	})
}
