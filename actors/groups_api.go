package actors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/persistence"
)

// groupCall sends one command to a group's coordinator and waits up to
// timeout (lowered by ctx's deadline) for its result. A coordinator that
// restarted under the request answers with an error wrapping
// kerr.NotCoordinator; a timeout is ErrTimeout.
func (n *Node) groupCall(ctx context.Context, groupID string, cmd any, timeout time.Duration) (any, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: no time left", ErrTimeout)
	}
	res, err := n.awaitGroup(n.system.Root.RequestFuture(n.groupsPID, &groupRequest{Group: groupID, Cmd: cmd}, timeout))
	if err != nil {
		return nil, fmt.Errorf("%w: group %q: %v", ErrTimeout, groupID, err)
	}
	if e, ok := res.(error); ok {
		return nil, e
	}
	return res, nil
}

// awaitGroup waits for a group request's answer, or for the node to stop.
// An actor is stopped by a system message, served before the user messages
// still in its mailbox, which are then dropped: a request queued at the
// groups supervisor or a group actor when the node stops is never answered,
// and its caller would wait out its timeout (minutes for a SyncGroup). Once
// the actors have stopped it gets NOT_COORDINATOR instead: in doubt, as after
// a coordinator crash.
func (n *Node) awaitGroup(fut actor.Future) (any, error) {
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := fut.Result()
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-n.actorsStopped:
		select {
		case r := <-done: // answered before the actors stopped
			return r.res, r.err
		default:
			return errGroupCoordinatorRestarting, nil
		}
	}
}

func groupResult[T any](res any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	r, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("group: unexpected reply %T", res)
	}
	return r, nil
}

// JoinGroup waits for the join phase the request enters to end (up to the
// member's rebalance timeout, and a request timeout beyond it).
func (n *Node) JoinGroup(ctx context.Context, groupID string, j *group.Join) (*group.JoinResult, error) {
	return groupResult[*group.JoinResult](n.groupCall(ctx, groupID, j, j.RebalanceTimeout+n.cfg.RequestTimeout))
}

// SyncGroup waits for the leader's assignment (up to the rebalance timeout
// the group runs with, bounded by ctx).
func (n *Node) SyncGroup(ctx context.Context, groupID string, s *group.Sync) (*group.SyncResult, error) {
	return groupResult[*group.SyncResult](n.groupCall(ctx, groupID, s, 5*time.Minute+n.cfg.RequestTimeout))
}

func (n *Node) Heartbeat(ctx context.Context, groupID string, h *group.Heartbeat) (*group.HeartbeatResult, error) {
	return groupResult[*group.HeartbeatResult](n.groupCall(ctx, groupID, h, n.cfg.RequestTimeout))
}

func (n *Node) LeaveGroup(ctx context.Context, groupID string, l *group.Leave) (*group.LeaveResult, error) {
	return groupResult[*group.LeaveResult](n.groupCall(ctx, groupID, l, n.cfg.RequestTimeout))
}

// CommitOffsets commits offsets for a group; they are durable when it
// returns without error (the per-offset errors aside).
func (n *Node) CommitOffsets(ctx context.Context, groupID string, c *group.Commit) (*group.CommitResult, error) {
	return groupResult[*group.CommitResult](n.groupCall(ctx, groupID, c, n.cfg.RequestTimeout))
}

func (n *Node) DeleteGroupOffsets(ctx context.Context, groupID string, d *group.DeleteOffsets) (*group.DeleteOffsetsResult, error) {
	return groupResult[*group.DeleteOffsetsResult](n.groupCall(ctx, groupID, d, n.cfg.RequestTimeout))
}

func (n *Node) DeleteGroup(ctx context.Context, groupID string) (*group.DeleteGroupResult, error) {
	return groupResult[*group.DeleteGroupResult](n.groupCall(ctx, groupID, &group.DeleteGroup{}, n.cfg.RequestTimeout))
}

// DescribeGroup returns the group as DescribeGroups shows it (Dead when it
// does not exist).
func (n *Node) DescribeGroup(ctx context.Context, groupID string) (group.Description, error) {
	if err := n.checkCoordinator(groupID); err != nil {
		return group.Description{}, err
	}
	if n.groups.get(groupID) == nil {
		return group.Description{State: group.Dead}, nil // no actor spawned for a lookup
	}
	return groupResult[group.Description](n.groupCall(ctx, groupID, &describeGroup{}, n.cfg.RequestTimeout))
}

// CommittedOffsets returns a group's committed offsets for the partitions
// (all when nil); partitions without one are absent.
func (n *Node) CommittedOffsets(ctx context.Context, groupID string, tps []group.TopicPartition) (map[group.TopicPartition]group.Offset, error) {
	if err := n.checkCoordinator(groupID); err != nil {
		return nil, err
	}
	if n.groups.get(groupID) == nil {
		return map[group.TopicPartition]group.Offset{}, nil
	}
	return groupResult[map[group.TopicPartition]group.Offset](n.groupCall(ctx, groupID, &fetchOffsets{Partitions: tps}, n.cfg.RequestTimeout))
}

// ListGroups returns every group that exists, sorted by id.
func (n *Node) ListGroups() []*GroupSummary {
	gs := n.groups.list()
	sort.Slice(gs, func(i, j int) bool { return gs[i].Group < gs[j].Group })
	return gs
}

// PartitionLag is one partition's consumer lag in a group.
type PartitionLag struct {
	Topic         string
	Partition     int32
	Committed     int64 // the group's committed offset
	HighWatermark int64 // -1 when the partition is gone
	Lag           int64 // HighWatermark - Committed, at least 0; -1 when unknown
}

// GroupLag returns, for each partition a group has committed an offset for,
// the committed offset against the partition's high watermark, sorted by
// topic and partition. ok is false when the group does not exist.
func (n *Node) GroupLag(groupID string) (lags []PartitionLag, ok bool) {
	s := n.groups.get(groupID)
	if s == nil {
		return nil, false
	}
	for _, tp := range group.SortedPartitions(s.Offsets) {
		l := PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Committed: s.Offsets[tp].Offset, HighWatermark: -1, Lag: -1}
		if h := n.registry.get(persistence.PartitionID{Topic: tp.Topic, Partition: tp.Partition}); h != nil {
			l.HighWatermark = h.view.hw.Load()
			l.Lag = max(l.HighWatermark-l.Committed, 0)
		}
		lags = append(lags, l)
	}
	return lags, true
}

// GroupErrorCode maps an error of the group API to a Kafka error code: the
// wrapped *kerr.Error, COORDINATOR_NOT_AVAILABLE for a timeout (retriable:
// the client finds the coordinator again).
func GroupErrorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

// ListGroupSummary returns one group's summary, or nil if it does not exist.
func (n *Node) ListGroupSummary(groupID string) *GroupSummary { return n.groups.get(groupID) }

// forgetTopicOffsets drops a deleted topic's committed offsets from every
// group, as Kafka does; a failure is logged (the offsets then linger, with
// no partition to lag against).
func (n *Node) forgetTopicOffsets(ctx context.Context, topic string) {
	for _, s := range n.groups.list() {
		has := false
		for tp := range s.Offsets {
			if tp.Topic == topic {
				has = true
				break
			}
		}
		if !has {
			continue
		}
		if _, err := n.groupCall(ctx, s.Group, &group.ForgetTopic{Topic: topic}, n.cfg.RequestTimeout); err != nil {
			n.logger.Warn("forget a deleted topic's offsets", "group", s.Group, "topic", topic, "err", err)
		}
	}
}
