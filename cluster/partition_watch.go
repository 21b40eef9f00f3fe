package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// ErrStaleLeader: AlterISR was asked by a broker that no longer leads the
// partition in the epoch it named (a controller elected another since).
var ErrStaleLeader = errors.New("not the partition leader of that epoch")

// PartitionEvent is one partition state as written (State nil: deleted).
type PartitionEvent struct {
	Topic     string
	Partition int32
	State     *fluxopb.PartitionState
	Revision  uint64
}

// WatchPartitions delivers every existing partition state, then each change,
// in revision order, until ctx is done or the store closes (then the channel
// is closed). States arrive from this broker's server, which may lag the
// stream leader: a watcher acts on them only as far as their epochs allow
// (a partition actor refuses an epoch older than its own).
func (s *Store) WatchPartitions(ctx context.Context) (<-chan PartitionEvent, error) {
	return watchKV(ctx, s, "watch partitions", partitionKeyPrefix+">", 256, func(e jetstream.KeyValueEntry, _ bool) (PartitionEvent, bool) {
		topic, p, err := parsePartitionKey(e.Key())
		if err != nil {
			return PartitionEvent{}, false
		}
		ev := PartitionEvent{Topic: topic, Partition: p, Revision: e.Revision()}
		if e.Operation() == jetstream.KeyValuePut {
			st := new(fluxopb.PartitionState)
			if proto.Unmarshal(e.Value(), st) != nil {
				return PartitionEvent{}, false
			}
			ev.State = st
		}
		return ev, true
	})
}

// AlterISR records the in-sync set a partition leader decided (Kafka's
// AlterPartition, KIP-497), by compare-and-set on the state read from the
// stream leader: only while leader still leads in epoch, so a deposed
// leader's change is refused with ErrStaleLeader. The leader stays in the
// set. Returns the state written.
func (s *Store) AlterISR(ctx context.Context, topic string, p, leader, epoch int32, isr []int32) (*fluxopb.PartitionState, error) {
	return s.alterLeaderState(ctx, "alter isr", topic, p, leader, epoch, func(next *fluxopb.PartitionState) {
		next.Isr = slices.Clone(isr)
		if !slices.Contains(next.Isr, leader) {
			next.Isr = append(next.Isr, leader)
		}
		slices.Sort(next.Isr)
	})
}

// BumpLeaderEpoch moves a leadership to the next epoch, same leader and
// in-sync set, by compare-and-set while leader still leads in epoch
// (ErrStaleLeader otherwise). A broker that restarts calls it for the
// leaderships it held before: the crash may have lost writes it had not
// synced but its followers had fetched, and only a new epoch makes them
// find the divergence and truncate. Returns the state written.
func (s *Store) BumpLeaderEpoch(ctx context.Context, topic string, p, leader, epoch int32) (*fluxopb.PartitionState, error) {
	return s.alterLeaderState(ctx, "bump leader epoch", topic, p, leader, epoch, func(next *fluxopb.PartitionState) {
		next.LeaderEpoch = epoch + 1
	})
}

// alterLeaderState is a leader's own change of its partition's state: read
// from the stream leader, refused unless leader leads in epoch, changed by
// mutate and written by compare-and-set on the revision read (retried on
// a conflict).
func (s *Store) alterLeaderState(ctx context.Context, op, topic string, p, leader, epoch int32, mutate func(*fluxopb.PartitionState)) (*fluxopb.PartitionState, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var lastErr error
	for attempt := range maxCASAttempts {
		if attempt > 0 {
			if err := casBackoff(ctx, attempt); err != nil {
				return nil, opError(op, err)
			}
		}
		st, rev, err := s.GetPartition(ctx, topic, p)
		if err != nil {
			return nil, err
		}
		if st == nil || st.Leader != leader || st.LeaderEpoch != epoch {
			return nil, opError(op, fmt.Errorf("%w: %s-%d leader %d epoch %d, asked by %d for epoch %d",
				ErrStaleLeader, topic, p, st.GetLeader(), st.GetLeaderEpoch(), leader, epoch))
		}
		next := proto.Clone(st).(*fluxopb.PartitionState)
		mutate(next)
		v, err := marshalOpts.Marshal(next)
		if err != nil {
			return nil, opError(op, err)
		}
		_, err = s.update(ctx, partitionKey(topic, p), v, rev)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, opError(op, err)
		}
		lastErr = err
	}
	return nil, opError(op, lastErr)
}

// DeletePartitionStates deletes every partition state of topic (after the
// topic itself was deleted), each at the revision read.
func (s *Store) DeletePartitionStates(ctx context.Context, topic string) error {
	const op = "delete partition states"
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	refs, err := s.ListPartitions(ctx, topic)
	if err != nil {
		return err
	}
	for _, r := range refs {
		e, err := s.readLatest(ctx, partitionKey(topic, r.Partition))
		if err != nil {
			return opError(op, err)
		}
		if e.deleted {
			continue
		}
		if err := s.delete(ctx, partitionKey(topic, r.Partition), e.revision); err != nil && !errors.Is(err, ErrConflict) {
			return opError(op, err)
		}
	}
	return nil
}
