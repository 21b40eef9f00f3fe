package actors

import (
	"context"
	"slices"
	"time"
)

// A broker cut off from most of the cluster is a zombie: the others stop
// hearing its heartbeats, the controller gives its leaderships to other
// replicas in a newer epoch, but the zombie hears none of it and, left
// alone, keeps answering as leader. Its produce requests then time out
// (its followers fetch from the new leader), its reads are stale, and a
// client whose metadata requests reach only the zombie (it lists only the
// brokers it still hears: itself) never finds the new leader.
//
// So a broker serves its leaderships only while it hears a majority of the
// registered brokers (itself included), the same silence window after
// which the others declare it dead. Without that majority it is fenced:
// partitions it leads answer NOT_LEADER_OR_FOLLOWER, Metadata shows them
// leaderless and lists every registered broker, so clients refresh from
// the others and follow the new leaders. Its log and epoch stay as they
// are: when it hears a majority again it first re-reads every partition
// state from the store (learning any newer epoch, which makes it a
// follower), and only then serves again.

// fenceCheckInterval is how often the fence is reconsidered.
const fenceCheckInterval = 100 * time.Millisecond

// hearsMajority reports whether this broker heard a strict majority of the
// registered brokers (itself included) within the liveness window. Before
// the liveness detector has listened for a whole window it has not heard
// everyone yet, so it counts as heard.
func (m *clusterMember) hearsMajority() bool {
	if !m.live.Settled() {
		return true
	}
	alive := m.live.AliveSet()
	m.mu.RLock()
	defer m.mu.RUnlock()
	total, heard := 1, 1 // this broker
	for id := range m.brokers {
		if id == m.self {
			continue
		}
		total++
		if slices.Contains(alive, id) {
			heard++
		}
	}
	return 2*heard > total
}

// fenceLoop raises and lowers the fence.
func (m *clusterMember) fenceLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(fenceCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		heard := m.hearsMajority()
		switch {
		case !heard && !m.fenced.Load():
			m.fenced.Store(true)
			m.n.logger.Warn("cluster: fenced: this broker does not hear a majority of the brokers; its leaderships are suspended")
		case heard && m.fenced.Load():
			// Learn what changed while cut off before serving again.
			if err := m.refreshBrokers(ctx); err != nil {
				continue
			}
			if err := m.resync(ctx); err != nil {
				continue
			}
			m.fenced.Store(false)
			m.n.logger.Info("cluster: fence lifted: a majority of the brokers is heard again")
		}
	}
}

// Fenced reports whether this broker is cut off from the cluster's majority
// and so serves none of its leaderships (never on a single node).
func (n *Node) Fenced() bool {
	return n.member != nil && n.member.fenced.Load()
}

// leads reports whether this node serves clients as the partition's
// leader: its replica leads and the node is not fenced.
func (n *Node) leads(h *partitionHandle) bool {
	return h.view.leader.Load() && !n.Fenced()
}
