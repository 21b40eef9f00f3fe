package actors

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// brokerActor is the root supervisor of a node and its entry point for actor
// messages, local or remote. It spawns the partitions supervisor and routes
// requests: produce is forwarded to the partition actor (which answers the
// original sender directly); reads and topic administration run in their own
// goroutines so a long poll or a coordination-store round trip never blocks
// this mailbox.
type brokerActor struct {
	node        *Node
	ready       chan<- *actor.PID
	groupsReady chan<- *actor.PID
}

func (b *brokerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		pid, err := ctx.SpawnNamed(supervisorProps(b.node, &b.node.restarts, b.node.logger), "partitions")
		if err != nil {
			panic(err)
		}
		select {
		case b.ready <- pid:
		default:
		}
		gpid, err := ctx.SpawnNamed(groupsSupervisorProps(b.node), "groups")
		if err != nil {
			panic(err)
		}
		select {
		case b.groupsReady <- gpid:
		default:
		}
	case *fluxopb.ProduceRequest:
		h, e := b.node.handle(m.Topic, m.Partition)
		if e != nil {
			respond(ctx, ctx.Sender(), &fluxopb.ProduceResponse{ErrorCode: int32(e.Code), ErrorMessage: "unknown topic or partition", BaseOffset: -1, LogAppendTimeMs: -1})
			return
		}
		ctx.Forward(h.pid)
	case *fluxopb.ReplicaFetchRequest:
		// A follower's fetch: the partition actor answers the follower's
		// actor directly.
		h, e := b.node.handle(m.Topic, m.Partition)
		if e != nil {
			respond(ctx, ctx.Sender(), &fluxopb.ReplicaFetchResponse{Topic: m.Topic, Partition: m.Partition, FetchId: m.FetchId, ErrorCode: int32(e.Code)})
			return
		}
		ctx.Forward(h.pid)
	case *fluxopb.DeleteRecordsRequest:
		h, e := b.node.handle(m.Topic, m.Partition)
		if e != nil {
			respond(ctx, ctx.Sender(), &fluxopb.DeleteRecordsResponse{ErrorCode: int32(e.Code), LowWatermark: -1})
			return
		}
		ctx.Forward(h.pid)
	case *fluxopb.FetchRequest:
		b.async(ctx, func(c context.Context) any {
			res, err := b.node.Fetch(c, m)
			if err != nil {
				return &fluxopb.FetchResponse{ErrorCode: int32(kerr.RequestTimedOut.Code), ErrorMessage: err.Error(), HighWatermark: -1, LogStartOffset: -1}
			}
			return res
		})
	case *fluxopb.ListOffsetsRequest:
		b.async(ctx, func(c context.Context) any {
			res, _ := b.node.ListOffsets(c, m)
			return res
		})
	case *fluxopb.CreateTopicRequest:
		b.async(ctx, func(c context.Context) any {
			res, err := b.node.CreateTopic(c, m)
			if err != nil {
				return &fluxopb.CreateTopicResponse{ErrorCode: int32(kerr.UnknownServerError.Code), ErrorMessage: err.Error()}
			}
			return res
		})
	case *fluxopb.DeleteTopicRequest:
		b.async(ctx, func(c context.Context) any {
			res, err := b.node.DeleteTopic(c, m)
			if err != nil {
				return &fluxopb.DeleteTopicResponse{ErrorCode: int32(kerr.UnknownServerError.Code), ErrorMessage: err.Error()}
			}
			return res
		})
	case *fluxopb.ListTopicsRequest:
		topics, _ := b.node.ListTopics(context.Background())
		respond(ctx, ctx.Sender(), &fluxopb.ListTopicsResponse{Topics: topics})
	case *fluxopb.DescribeTopicRequest:
		b.async(ctx, func(c context.Context) any {
			res, err := b.node.DescribeTopic(c, m)
			if err != nil {
				return &fluxopb.DescribeTopicResponse{ErrorCode: int32(kerr.UnknownServerError.Code), ErrorMessage: err.Error()}
			}
			return res
		})
	case *fluxopb.AlterTopicConfigRequest:
		b.async(ctx, func(c context.Context) any {
			res, err := b.node.AlterTopicConfig(c, m)
			if err != nil {
				return &fluxopb.AlterTopicConfigResponse{ErrorCode: int32(kerr.UnknownServerError.Code), ErrorMessage: err.Error()}
			}
			return res
		})
	}
}

// async runs fn outside the mailbox and sends its result to the sender.
func (b *brokerActor) async(ctx actor.Context, fn func(context.Context) any) {
	sender := ctx.Sender()
	if sender == nil {
		return
	}
	system := ctx.ActorSystem()
	timeout := b.node.cfg.RequestTimeout
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		system.Root.Send(sender, fn(c))
	}()
}
