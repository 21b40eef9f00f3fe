package actors

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/fluxo-broker/fluxo/persistence"
)

// partitionHandle is how the node reaches one hosted partition: its actor for
// writes, its view for reads.
type partitionHandle struct {
	id   persistence.PartitionID
	pid  *actor.PID
	view *partitionView
}

// registry maps partitions to their handles. The partitions supervisor writes
// it; anyone reads it.
type registry struct {
	mu sync.RWMutex
	m  map[persistence.PartitionID]*partitionHandle
}

func newRegistry() *registry {
	return &registry{m: make(map[persistence.PartitionID]*partitionHandle)}
}

func (r *registry) get(id persistence.PartitionID) *partitionHandle {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[id]
}

func (r *registry) put(h *partitionHandle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[h.id] = h
}

func (r *registry) remove(id persistence.PartitionID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// all returns the handles sorted by topic and partition.
func (r *registry) all() []*partitionHandle {
	r.mu.RLock()
	out := make([]*partitionHandle, 0, len(r.m))
	for _, h := range r.m {
		out = append(out, h)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].id.Topic != out[j].id.Topic {
			return out[i].id.Topic < out[j].id.Topic
		}
		return out[i].id.Partition < out[j].id.Partition
	})
	return out
}

// Messages of the partitions supervisor.
type (
	// startPartitions spawns actors for the partitions not yet running.
	startPartitions struct {
		ids             []persistence.PartitionID
		maxMessageBytes int32
		minInsync       int32
	}
	// stopPartitions stops the actors and waits for them.
	stopPartitions struct{ ids []persistence.PartitionID }
	// done answers both.
	doneMsg struct{ err error }
)

// partitionsSupervisor spawns and supervises one actor per hosted partition.
// When it starts (or restarts, which stops its children) it respawns every
// partition the node's topic cache lists.
type partitionsSupervisor struct {
	node *Node
}

func (s *partitionsSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if m := s.node.member; m != nil {
			for _, id := range m.hostedStates() {
				s.spawn(ctx, []persistence.PartitionID{id}, s.node.topicConfig(s.node.cachedTopic(id.Topic)))
			}
			return
		}
		for _, t := range s.node.topicsSnapshot() {
			ids := make([]persistence.PartitionID, t.Partitions)
			for i := range ids {
				ids[i] = persistence.PartitionID{Topic: t.Name, Partition: int32(i)}
			}
			s.spawn(ctx, ids, s.node.topicConfig(t))
		}
	case *startPartitions:
		ctx.Respond(&doneMsg{err: s.spawn(ctx, m.ids, topicSettings{maxMessageBytes: m.maxMessageBytes, minInsync: m.minInsync})})
	case *stopPartitions:
		for _, id := range m.ids {
			h := s.node.registry.get(id)
			if h == nil {
				continue
			}
			// Poison lets requests already queued be served first.
			if _, err := ctx.PoisonFuture(h.pid).Result(); err != nil {
				s.node.logger.Warn("partition stop", "topic", id.Topic, "partition", id.Partition, "err", err)
			}
			s.node.registry.remove(id)
		}
		ctx.Respond(&doneMsg{})
	}
}

func (s *partitionsSupervisor) spawn(ctx actor.Context, ids []persistence.PartitionID, ts topicSettings) error {
	for _, id := range ids {
		if h := s.node.registry.get(id); h != nil && h.pid != nil && s.isChild(ctx, h.pid) {
			continue
		}
		view := newPartitionView(id)
		view.maxMessageBytes.Store(ts.maxMessageBytes)
		view.minInsync.Store(ts.minInsync)
		store, logger := s.node.store, s.node.logger
		var hooks *replicaHooks
		if m := s.node.member; m != nil {
			hooks = m.hooks()
		}
		props := actor.PropsFromProducer(func() actor.Actor {
			// A restart builds a fresh actor sharing the view.
			return &partitionActor{id: id, store: store, view: view, logger: logger, hooks: hooks}
		}, actor.WithReceiverMiddleware(s.node.cfg.ActorMiddleware...))
		pid, err := ctx.SpawnNamed(props, partitionActorName(id))
		if err != nil {
			return fmt.Errorf("spawn partition %s-%d: %w", id.Topic, id.Partition, err)
		}
		s.node.registry.put(&partitionHandle{id: id, pid: pid, view: view})
	}
	return nil
}

func (s *partitionsSupervisor) isChild(ctx actor.Context, pid *actor.PID) bool {
	for _, c := range ctx.Children() {
		if c.Equal(pid) {
			return true
		}
	}
	return false
}

func partitionActorName(id persistence.PartitionID) string {
	return fmt.Sprintf("%s-%d", id.Topic, id.Partition)
}

func supervisorProps(node *Node, restarts *restartCounts, logger *slog.Logger) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &partitionsSupervisor{node: node} },
		actor.WithSupervisor(newBackoffStrategy(logger, restarts)),
		actor.WithReceiverMiddleware(node.cfg.ActorMiddleware...))
}
