package actors

import (
	"context"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/dtmfd/dtmfd/actors/clusterpb"
)

// singleton is the grain that runs a connection only one member may hold,
// such as the tutorial's voice stream, for as long as it is active. It is
// started by the first Poke after its member is gone, and stops when
// moved: every member pokes it, so it never stays down long.
type singleton struct {
	run    func(ctx context.Context) error
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// Receive handles the singleton's messages.
func (s *singleton) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		s.start(cluster.GetClusterIdentity(ctx).Identity)
	case *clusterpb.Poke:
		ctx.Respond(&clusterpb.Ack{})
	case *actor.Stopping:
		s.cancel()
		<-s.done
		s.log.Info("singleton stopped on this member")
	}
}

func (s *singleton) start(key string) {
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	s.log.Info("singleton started on this member", "key", key)
	go func() {
		defer close(s.done)
		if err := s.run(runCtx); err != nil && runCtx.Err() == nil {
			s.log.Error("singleton stopped", "key", key, "error", err)
		}
	}()
}
