package gateway

// OffsetCommit: versions 0-9.
//
// Offsets are durable (journaled in the group's __consumer_offsets
// partition, synced) before the answer. v0 commits have no generation: they
// are simple commits (generation -1), accepted while the group has no
// members, as are v1+ commits with generation -1. A partition of a topic
// that does not exist is UNKNOWN_TOPIC_OR_PARTITION; metadata over 4096
// bytes is OFFSET_METADATA_TOO_LARGE; the leader epoch (v6+) and metadata
// are kept and returned by OffsetFetch.
//
// Skipped: the v1 commit timestamp and the v2-v4 retention time are ignored
// (offsets are kept until the group is deleted; offsets.retention.minutes is
// not implemented). v9's member epoch is read as the generation (classic
// groups only; KIP-848 consumer groups are not served).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(8, 0, 9, serveOffsetCommit) }

func serveOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	node := c.server.node
	cm := &group.Commit{MemberID: req.MemberID, Generation: req.Generation}
	if req.Version == 0 {
		cm.Generation = -1
	}
	if req.InstanceID != nil {
		cm.InstanceID = *req.InstanceID
	}
	// Where each request partition's answer goes; -1: answered here.
	type slot struct{ t, p, commit int }
	var slots []slot
	for i, rt := range req.Topics {
		resp.Topics = append(resp.Topics, kmsg.OffsetCommitResponseTopic{Topic: rt.Topic})
		meta := node.Topic(rt.Topic)
		for j, rp := range rt.Partitions {
			p := kmsg.NewOffsetCommitResponseTopicPartition()
			p.Partition = rp.Partition
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, p)
			switch {
			case req.Group == "":
				resp.Topics[i].Partitions[j].ErrorCode = kerr.InvalidGroupID.Code
			case meta == nil || rp.Partition < 0 || rp.Partition >= meta.Partitions:
				resp.Topics[i].Partitions[j].ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				o := group.CommitOffset{TopicPartition: group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}, Offset: rp.Offset, LeaderEpoch: -1}
				if req.Version >= 6 {
					o.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				slots = append(slots, slot{i, j, len(cm.Offsets)})
				cm.Offsets = append(cm.Offsets, o)
			}
		}
	}
	if len(cm.Offsets) == 0 {
		return resp, nil
	}
	res, err := node.CommitOffsets(ctx, req.Group, cm)
	for _, s := range slots {
		code := actors.GroupErrorCode(err)
		if err == nil && res.Errs[s.commit] != nil {
			code = res.Errs[s.commit].(*kerr.Error).Code
		}
		resp.Topics[s.t].Partitions[s.p].ErrorCode = code
	}
	return resp, nil
}
