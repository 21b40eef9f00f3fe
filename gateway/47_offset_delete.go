package gateway

// OffsetDelete: version 0. Deletes committed offsets of a group, except for
// topics its live members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC, read from
// the consumer protocol metadata). A group that does not exist is
// GROUP_ID_NOT_FOUND; a topic that does not exist, UNKNOWN_TOPIC_OR_PARTITION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(47, 0, 0, serveOffsetDelete) }

func serveOffsetDelete(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	node := c.server.node
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if node.ListGroupSummary(req.Group) == nil {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp, nil
	}
	type slot struct{ t, p, del int }
	var slots []slot
	d := &group.DeleteOffsets{}
	for i, rt := range req.Topics {
		resp.Topics = append(resp.Topics, kmsg.OffsetDeleteResponseTopic{Topic: rt.Topic})
		meta := node.Topic(rt.Topic)
		for j, rp := range rt.Partitions {
			p := kmsg.NewOffsetDeleteResponseTopicPartition()
			p.Partition = rp.Partition
			if meta == nil || rp.Partition < 0 || rp.Partition >= meta.Partitions {
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				slots = append(slots, slot{i, j, len(d.Partitions)})
				d.Partitions = append(d.Partitions, group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition})
			}
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, p)
		}
	}
	res, err := node.DeleteGroupOffsets(ctx, req.Group, d)
	switch {
	case err != nil:
		resp.ErrorCode = actors.GroupErrorCode(err)
	case res.Err != nil:
		resp.ErrorCode = res.Err.(*kerr.Error).Code
	default:
		for _, s := range slots {
			if e := res.Errs[s.del]; e != nil {
				resp.Topics[s.t].Partitions[s.p].ErrorCode = e.(*kerr.Error).Code
			}
		}
	}
	return resp, nil
}
