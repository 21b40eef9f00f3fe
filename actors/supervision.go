package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// backoffStrategy is OneForOne supervision with exponential backoff: a failing
// child alone is restarted, after initial, 2*initial, ... up to max, the count
// resetting after a quiet window. Before the restart, the request that made
// the child fail is answered with a retriable error, so its caller does not
// wait for a timeout.
type backoffStrategy struct {
	initial, max, window time.Duration
	logger               *slog.Logger
	restarts             *restartCounts // counts restarts, for tests and metrics
}

// Restart kinds: which actor a supervisor restarted, for metrics and logs.
const (
	RestartBroker               = "broker"
	RestartPartitionsSupervisor = "partitions_supervisor"
	RestartGroupsSupervisor     = "groups_supervisor"
	RestartPartition            = "partition"
	RestartGroup                = "group"
	RestartOther                = "other"
)

// restartKinds lists the kinds in a fixed order (index into restartCounts).
var restartKinds = [...]string{RestartBroker, RestartPartitionsSupervisor, RestartGroupsSupervisor, RestartPartition, RestartGroup, RestartOther}

// restartCounts counts restarts by kind since the node started.
type restartCounts [len(restartKinds)]atomic.Int64

func (r *restartCounts) add(kind string) {
	for i, k := range restartKinds {
		if k == kind {
			r[i].Add(1)
			return
		}
	}
	r[len(r)-1].Add(1)
}

func (r *restartCounts) total() int64 {
	var n int64
	for i := range r {
		n += r[i].Load()
	}
	return n
}

// restartKind names the kind of the actor with the given id from its place
// in the actor tree (see docs/DESIGN.md).
func restartKind(id string) string {
	switch {
	case id == BrokerActorName:
		return RestartBroker
	case id == BrokerActorName+"/partitions":
		return RestartPartitionsSupervisor
	case id == BrokerActorName+"/groups":
		return RestartGroupsSupervisor
	case strings.HasPrefix(id, BrokerActorName+"/partitions/"):
		return RestartPartition
	case strings.HasPrefix(id, BrokerActorName+"/groups/"):
		return RestartGroup
	}
	return RestartOther
}

func newBackoffStrategy(logger *slog.Logger, restarts *restartCounts) *backoffStrategy {
	return &backoffStrategy{initial: 10 * time.Millisecond, max: 5 * time.Second, window: 30 * time.Second, logger: logger, restarts: restarts}
}

func (s *backoffStrategy) HandleFailure(system *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason any, message any) {
	if rs.NumberOfFailures(s.window) == 0 {
		rs.Reset()
	}
	rs.Fail()
	delay := s.initial << min(rs.FailureCount()-1, 20)
	if delay > s.max || delay <= 0 {
		delay = s.max
	}
	kind := restartKind(child.Id)
	s.logger.Error("actor failed; restarting", "actor", child.Id, "kind", kind, "reason", fmt.Sprint(reason), "failures", rs.FailureCount(), "backoff", delay)
	answerFailedRequest(system, message)
	if s.restarts != nil {
		s.restarts.add(kind)
	}
	time.AfterFunc(delay, func() { supervisor.RestartChildren(child) })
}

// answerFailedRequest replies to the request a child failed on, if it was one
// with a sender, with NOT_LEADER_OR_FOLLOWER: retriable, and honest about not
// knowing whether the request took effect.
func answerFailedRequest(system *actor.ActorSystem, message any) {
	env, ok := message.(*actor.MessageEnvelope)
	if !ok || env.Sender == nil {
		return
	}
	const why = "the actor serving this request failed and is restarting; retry"
	code := int32(kerr.NotLeaderForPartition.Code)
	var reply any
	switch env.Message.(type) {
	case *fluxopb.ProduceRequest:
		reply = &fluxopb.ProduceResponse{ErrorCode: code, ErrorMessage: why, BaseOffset: -1, LogAppendTimeMs: -1}
	case *fluxopb.DeleteRecordsRequest:
		reply = &fluxopb.DeleteRecordsResponse{ErrorCode: code, ErrorMessage: why, LowWatermark: -1}
	case *truncateMsg, *advanceStartMsg:
		reply = &checkpointReply{err: errPartitionUnavailable}
	case *startPartitions, *stopPartitions:
		reply = &doneMsg{err: errors.New("the partitions supervisor failed and is restarting; retry")}
	case *fluxopb.FetchRequest:
		reply = &fluxopb.FetchResponse{ErrorCode: code, ErrorMessage: why, HighWatermark: -1, LogStartOffset: -1}
	case *fluxopb.ListOffsetsRequest:
		reply = &fluxopb.ListOffsetsResponse{ErrorCode: code, ErrorMessage: why, Offset: -1, Timestamp: -1}
	case *fluxopb.CreateTopicRequest:
		reply = &fluxopb.CreateTopicResponse{ErrorCode: int32(kerr.RequestTimedOut.Code), ErrorMessage: why}
	case *fluxopb.DeleteTopicRequest:
		reply = &fluxopb.DeleteTopicResponse{ErrorCode: int32(kerr.RequestTimedOut.Code), ErrorMessage: why}
	case *fluxopb.AlterTopicConfigRequest:
		reply = &fluxopb.AlterTopicConfigResponse{ErrorCode: int32(kerr.RequestTimedOut.Code), ErrorMessage: why}
	case *fluxopb.DescribeTopicRequest:
		reply = &fluxopb.DescribeTopicResponse{ErrorCode: code, ErrorMessage: why}
	case *groupRequest:
		reply = errGroupCoordinatorRestarting
	case *fluxopb.ListTopicsRequest:
		return // no error field; the caller times out and retries
	default:
		return
	}
	system.Root.Send(env.Sender, reply)
}
