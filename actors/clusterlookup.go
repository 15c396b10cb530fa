package actors

import (
	"context"
	"slices"
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
	// onTopology hears the member count after each topology change.
	onTopology func(members int)
	// retired is set once this member hands its grains over: it then
	// places every grain on the other members, whatever the topology.
	retired atomic.Bool
	// members is the latest topology's, nil before the first.
	members atomic.Pointer[[]*cluster.Member]
}

const (
	placementName     = "dtmfd-placement"
	activationTimeout = 2 * time.Second
)

// newLookup returns the lookup; onTopology, if set, is told the number
// of members after every topology change.
func newLookup(onTopology func(members int)) *lookup {
	return &lookup{onTopology: onTopology}
}

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
		members := t.Members
		l.members.Store(&members)
		l.place()
		c.ActorSystem.Root.Send(l.placement, t)
		if l.onTopology != nil {
			l.onTopology(len(t.Members))
		}
	})
	l.unsub = func() { c.ActorSystem.EventStream.Unsubscribe(sub) }
}

// place hashes over the members, leaving this one out once retired.
func (l *lookup) place() {
	members := *l.members.Load()
	if l.retired.Load() {
		me := l.cluster.ActorSystem.Address()
		members = slices.DeleteFunc(slices.Clone(members), func(m *cluster.Member) bool {
			return m.Address() == me
		})
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(members)
	l.rdv.Store(rdv)
}

// retire hands this member's grains over: from now on it places grains
// only on the others, and its placement actor stops every grain it
// hosts (their state is in the store) and refuses new ones. It returns
// once they have stopped or ctx ends.
func (l *lookup) retire(ctx context.Context) error {
	l.retired.Store(true)
	if l.members.Load() != nil {
		l.place()
	}
	_, err := ask(ctx, l.cluster.ActorSystem.Root, l.placement, &retire{})
	return err
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
	// retiring holds who asked to retire the member, answered once its
	// last grain stopped; retired refuses activations from then on.
	retiring []*actor.PID
	retired  bool
}

// retire asks the placement actor to stop every grain here and to take
// no more.
type retire struct{}

// retired answers a retire.
type retired struct{}

// grain is one activation on this member.
type grain struct {
	ci  *cluster.ClusterIdentity
	pid *actor.PID
}

// Receive handles the placement actor's messages.
func (p *placement) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		if p.retired {
			// The asker retries on the grain's owner in its next topology.
			ctx.Respond(&cluster.ActivationResponse{Failed: true})
			return
		}
		p.activate(ctx, m)
	case *retire:
		p.retired = true
		p.retiring = append(p.retiring, ctx.Sender())
		for _, g := range p.grains {
			ctx.Poison(g.pid)
		}
		p.answerRetire(ctx)
	case *actor.Terminated:
		for key, g := range p.grains {
			if g.pid.Equal(m.Who) {
				delete(p.grains, key)
				break
			}
		}
		p.answerRetire(ctx)
	case *cluster.ClusterTopology:
		p.rebalance(ctx, m)
	case *actor.Stopping:
		for _, g := range p.grains {
			ctx.Poison(g.pid)
		}
	}
}

func (p *placement) answerRetire(ctx actor.Context) {
	if !p.retired || len(p.grains) > 0 {
		return
	}
	for _, w := range p.retiring {
		ctx.Send(w, &retired{})
	}
	p.retiring = nil
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
