package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// A broker that restarts may find itself still named leader of partitions
// it led before: it was down for less than the liveness window, so the
// controller never noticed. It must not lead again in that epoch. The crash
// may have lost writes it had not synced (so never acknowledged) but that
// its followers had already fetched; leading on in the same epoch, it would
// write other records at those offsets, the followers' next fetch would
// agree on the epoch and find no divergence, and the two histories would
// differ under one high watermark (found by the chaos run: two acknowledged
// records at one offset). So those leaderships are withheld from the local
// replicas until the epoch is bumped (Store.BumpLeaderEpoch); in the new
// epoch the followers find where they diverge and truncate, as after any
// election. Acknowledged records are safe: the high watermark never passes
// the leader's own synced end.

// reclaimRetry is how long reclaiming waits after the store fails.
const reclaimRetry = 500 * time.Millisecond

// withholdOldLeaderships records the leaderships the store gives this node
// as it joins (before its own heartbeats can have earned it a new one) and
// returns them. The store may be electing its own leaders (5-7 s when the
// broker that died led them): the listing is retried until ctx ends.
func (m *clusterMember) withholdOldLeaderships(ctx context.Context) ([]cluster.PartitionRef, error) {
	var refs []cluster.PartitionRef
	for {
		var err error
		if refs, err = m.store.ListPartitions(ctx, ""); err == nil {
			break
		}
		m.n.logger.Debug("cluster: list partition states", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list partition states: %w", err)
		case <-time.After(reclaimRetry):
		}
	}
	var old []cluster.PartitionRef
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range refs {
		if r.Topic == OffsetsTopic || r.State == nil || r.State.Leader != m.self {
			continue // group journals are fenced by their own claims
		}
		m.withheld[persistence.PartitionID{Topic: r.Topic, Partition: r.Partition}] = r.State.LeaderEpoch
		old = append(old, r)
	}
	return old, nil
}

// roleView is the state the local replica acts on: st, unless it names this
// node leader in an epoch withheld since the restart, where it shows no
// leader (the replica waits, answering NOT_LEADER_OR_FOLLOWER).
func (m *clusterMember) roleView(id persistence.PartitionID, st *fluxopb.PartitionState) *fluxopb.PartitionState {
	if st == nil || st.Leader != m.self {
		return st
	}
	if e, ok := m.withheld[id]; !ok || st.LeaderEpoch > e {
		return st
	}
	v := proto.Clone(st).(*fluxopb.PartitionState)
	v.Leader = -1
	return v
}

// reclaimLeaderships bumps the epoch of each old leadership, retrying while
// the store is unavailable. One the store no longer records as ours in that
// epoch (the controller moved it) is dropped: nothing to reclaim.
func (m *clusterMember) reclaimLeaderships(ctx context.Context, old []cluster.PartitionRef) {
	defer m.wg.Done()
	for len(old) > 0 {
		var retry []cluster.PartitionRef
		for _, r := range old {
			st, err := m.store.BumpLeaderEpoch(ctx, r.Topic, r.Partition, m.self, r.State.LeaderEpoch)
			switch {
			case err == nil:
				m.n.logger.Info("partition: leadership reclaimed after restart", "topic", r.Topic, "partition", r.Partition, "epoch", st.LeaderEpoch)
			case errors.Is(err, cluster.ErrStaleLeader):
			default:
				if ctx.Err() != nil {
					return
				}
				m.n.logger.Debug("partition: reclaim leadership", "topic", r.Topic, "partition", r.Partition, "err", err)
				retry = append(retry, r)
			}
		}
		old = retry
		if len(old) > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(reclaimRetry):
			}
		}
	}
}
