package actors

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// The controller's work, run by whichever broker holds the controller key:
// place the replicas of new partitions, elect leaders when brokers die or
// leave (from the in-sync replicas only, unless the topic opts in to
// unclean election), and give leadership back to a partition's preferred
// replica once it has been alive and in sync for a while. Every write is a
// fenced batch (cluster.Controller.WritePartitions): a deposed controller
// writes nothing.

// maxWritesPerBatch keeps a fenced batch below the store's atomic batch
// limit (one slot is the controller key).
const maxWritesPerBatch = 50

// controllerLoop reconciles whenever this node is the controller and
// something changed: liveness, a topic, its own election; and every second.
func (m *clusterMember) controllerLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	aliveSince := map[int32]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-m.live.Changes():
			if ch.Alive {
				aliveSince[ch.NodeID] = time.Now()
			} else {
				delete(aliveSince, ch.NodeID)
			}
		case ev := <-m.ctrl.Events():
			if ev.Active {
				m.n.logger.Info("controller: elected", "node", m.self, "epoch", ev.Epoch)
			} else {
				m.n.logger.Info("controller: lost the controller key", "node", m.self)
			}
			m.mu.Lock()
			if ev.Active {
				m.controllerID = m.self
			}
			m.mu.Unlock()
		case <-m.kick:
		case <-t.C:
		}
		// A fenced controller's liveness view is no guide: it would see
		// the brokers it cannot hear as dead.
		if _, active := m.ctrl.Epoch(); !active || !m.live.Settled() || m.fenced.Load() {
			continue
		}
		if err := m.reconcile(ctx, aliveSince); err != nil && ctx.Err() == nil {
			m.n.logger.Debug("controller: reconcile", "err", err)
			m.kickController() // try again soon
		}
	}
}

// reconcile brings every partition state in line with the live brokers.
func (m *clusterMember) reconcile(ctx context.Context, aliveSince map[int32]time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics, err := m.store.ListTopics(ctx)
	if err != nil {
		return err
	}
	// The internal partitions group coordinators follow.
	topics = append(topics, &fluxopb.TopicMetadata{Name: OffsetsTopic, Partitions: m.n.cfg.OffsetsPartitions})
	refs, err := m.store.ListPartitions(ctx, "")
	if err != nil {
		return err
	}
	type key struct {
		topic string
		p     int32
	}
	listed := make(map[key]*fluxopb.PartitionState, len(refs))
	for _, r := range refs {
		listed[key{r.Topic, r.Partition}] = r.State
	}
	alive := m.live.AliveSet()
	isAlive := func(id int32) bool { return slices.Contains(alive, id) }
	now := time.Now()
	var writes []cluster.PartitionWrite
	for _, t := range topics {
		internal := t.Name == OffsetsTopic
		var placement [][]int32
		for p := int32(0); p < t.Partitions; p++ {
			st := listed[key{t.Name, p}]
			if st == nil {
				if placement == nil {
					rf := int(t.ReplicationFactor)
					if internal || rf <= 0 {
						rf = cluster.DefaultReplicationFactor(len(alive))
					}
					if placement, err = cluster.PlaceReplicas(alive, int(t.Partitions), rf); err != nil {
						m.n.logger.Warn("controller: cannot place topic", "topic", t.Name, "err", err)
						break
					}
				}
				w, ok, err := m.fresh(ctx, t.Name, p, func(cur *fluxopb.PartitionState) (*fluxopb.PartitionState, bool) {
					if cur != nil {
						return nil, false // someone placed it since the listing
					}
					return cluster.NewPartitionState(placement[p]), true
				})
				if err != nil {
					return err
				}
				if ok {
					writes = append(writes, w)
				}
				continue
			}
			decide := func(cur *fluxopb.PartitionState) (*fluxopb.PartitionState, bool) {
				return decideLeader(cur, isAlive, internal || t.GetConfig().GetUncleanLeaderElection(), aliveSince, now, m.n.cfg.PreferredLeaderDelay)
			}
			if _, changed := decide(st); !changed {
				continue
			}
			w, ok, err := m.fresh(ctx, t.Name, p, decide)
			if err != nil {
				return err
			}
			if ok {
				writes = append(writes, w)
			}
		}
	}
	for len(writes) > 0 {
		batch := writes[:min(len(writes), maxWritesPerBatch)]
		writes = writes[len(batch):]
		if _, err := m.ctrl.WritePartitions(ctx, batch); err != nil {
			if errors.Is(err, cluster.ErrConflict) {
				m.kickController()
				continue // one partition moved since: the next round re-reads it
			}
			return err
		}
		for _, w := range batch {
			m.n.logger.Info("controller: partition state", "topic", w.Topic, "partition", w.Partition,
				"leader", w.State.Leader, "epoch", w.State.LeaderEpoch, "replicas", w.State.Replicas, "isr", w.State.Isr)
		}
	}
	return nil
}

// fresh re-reads a partition from the stream leader and returns the write
// decide makes of it, at the revision read.
func (m *clusterMember) fresh(ctx context.Context, topic string, p int32, decide func(*fluxopb.PartitionState) (*fluxopb.PartitionState, bool)) (cluster.PartitionWrite, bool, error) {
	cur, rev, err := m.store.GetPartition(ctx, topic, p)
	if err != nil {
		return cluster.PartitionWrite{}, false, err
	}
	next, ok := decide(cur)
	if !ok {
		return cluster.PartitionWrite{}, false, nil
	}
	return cluster.PartitionWrite{Topic: topic, Partition: p, State: next, Rev: rev}, true, nil
}

// decideLeader is the controller's decision for one placed partition:
// elect from the live in-sync replicas (cluster.ElectLeader), and otherwise
// give leadership back to the preferred replica (the first) once it has
// been alive for delay and is in sync. Internal partitions (the group
// coordinators', whose journals NATS replicates) keep every live replica in
// sync.
func decideLeader(st *fluxopb.PartitionState, alive func(int32) bool, unclean bool, aliveSince map[int32]time.Time, now time.Time, delay time.Duration) (*fluxopb.PartitionState, bool) {
	next, changed := cluster.ElectLeader(st, alive, unclean)
	if unclean && next.Leader >= 0 {
		// Internal: every live replica is in sync.
		var isr []int32
		for _, r := range next.Replicas {
			if alive(r) {
				isr = append(isr, r)
			}
		}
		if !slices.Equal(isr, next.Isr) {
			if !changed {
				next = proto.Clone(next).(*fluxopb.PartitionState)
			}
			next.Isr, changed = isr, true
		}
	}
	if changed || len(next.Replicas) == 0 {
		return next, changed
	}
	pref := next.Replicas[0]
	since, ok := aliveSince[pref]
	if next.Leader != pref && ok && now.Sub(since) >= delay && alive(pref) && slices.Contains(next.Isr, pref) {
		next = proto.Clone(next).(*fluxopb.PartitionState)
		next.Leader = pref
		next.LeaderEpoch++
		return next, true
	}
	return next, false
}
