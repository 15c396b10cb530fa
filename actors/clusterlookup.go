package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// lookup places grains by rendezvous hashing over the members, as the
// library's disthash lookup does, with three differences that the library
// version gets wrong at the revision dtmfd uses: the member table is
// swapped atomically (the library reassigns it unsynchronised while
// requests read it), a stopped grain is forgotten by PID value (the
// library compares pointers, so a re-activated grain could be answered
// with its dead PID), and an activation request waits at most
// activationTimeout.
type lookup struct {
	cluster   *cluster.Cluster
	rdv       atomic.Pointer[cluster.Rendezvous]
	placement *actor.PID
	unsub     func()
}

const (
	placementName     = "dtmfd-placement"
	activationTimeout = 2 * time.Second
)

func newLookup() *lookup { return &lookup{} }

// Setup starts the placement actor and follows the topology.
func (l *lookup) Setup(c *cluster.Cluster, _ []string, _ bool) {
	l.cluster = c
	l.rdv.Store(cluster.NewRendezvous())
	props := actor.PropsFromProducer(func() actor.Actor {
		return &placement{cluster: c, grains: make(map[string]grain)}
	})
	l.placement, _ = c.ActorSystem.Root.SpawnNamed(props, placementName)

	sub := c.ActorSystem.EventStream.Subscribe(func(ev any) {
		t, ok := ev.(*cluster.ClusterTopology)
		if !ok {
			return
		}
		rdv := cluster.NewRendezvous()
		rdv.UpdateMembers(t.Members)
		l.rdv.Store(rdv)
		c.ActorSystem.Root.Send(l.placement, t)
	})
	l.unsub = func() { c.ActorSystem.EventStream.Unsubscribe(sub) }
}

// Get returns the PID of a grain, activating it on its owner if needed.
func (l *lookup) Get(ci *cluster.ClusterIdentity) *actor.PID {
	owner := l.rdv.Load().GetByClusterIdentity(ci)
	if owner == "" {
		return nil
	}
	req := &cluster.ActivationRequest{ClusterIdentity: ci}
	f := l.cluster.ActorSystem.Root.RequestFuture(actor.NewPID(owner, placementName), req, activationTimeout)
	res, err := f.Result()
	if err != nil {
		return nil
	}
	r, ok := res.(*cluster.ActivationResponse)
	if !ok || r.Pid == nil {
		return nil
	}
	return r.Pid
}

// RemovePid is not needed: a stopped grain's placement entry goes when
// its Terminated arrives.
func (l *lookup) RemovePid(*cluster.ClusterIdentity, *actor.PID) {}

// Shutdown stops the placement actor, which stops every grain here.
func (l *lookup) Shutdown() {
	if l.unsub != nil {
		l.unsub()
		l.unsub = nil
	}
	if l.placement != nil {
		_ = l.cluster.ActorSystem.Root.PoisonFuture(l.placement).Wait()
		l.placement = nil
	}
}

// placement activates the grains this member owns and stops those whose
// owner changed with the topology; their state is in the store.
type placement struct {
	cluster *cluster.Cluster
	grains  map[string]grain
}

// grain is one activation on this member.
type grain struct {
	ci  *cluster.ClusterIdentity
	pid *actor.PID
}

// Receive handles the placement actor's messages.
func (p *placement) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		p.activate(ctx, m)
	case *actor.Terminated:
		for key, g := range p.grains {
			if g.pid.Equal(m.Who) {
				delete(p.grains, key)
				break
			}
		}
	case *cluster.ClusterTopology:
		p.rebalance(ctx, m)
	case *actor.Stopping:
		for _, g := range p.grains {
			ctx.Poison(g.pid)
		}
	}
}

func (p *placement) activate(ctx actor.Context, m *cluster.ActivationRequest) {
	key := m.ClusterIdentity.AsKey()
	if g, ok := p.grains[key]; ok {
		ctx.Respond(&cluster.ActivationResponse{Pid: g.pid})
		return
	}
	kind, ok := p.cluster.TryGetClusterKind(m.ClusterIdentity.Kind)
	if !ok {
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	props := cluster.WithClusterIdentity(kind.Props, m.ClusterIdentity)
	pid := ctx.SpawnPrefix(props, key)
	p.grains[key] = grain{ci: m.ClusterIdentity, pid: pid}
	ctx.Respond(&cluster.ActivationResponse{Pid: pid})
}

func (p *placement) rebalance(ctx actor.Context, t *cluster.ClusterTopology) {
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(t.Members)
	me := p.cluster.ActorSystem.Address()
	for _, g := range p.grains {
		if rdv.GetByClusterIdentity(g.ci) != me {
			ctx.Poison(g.pid)
		}
	}
}
