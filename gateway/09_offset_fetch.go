package gateway

// OffsetFetch: versions 0-9; v8+ asks for several groups at once.
//
// A partition without a committed offset, or a group that does not exist,
// answers offset -1 with no error, as Kafka does. Null topics (v2+) mean
// every partition the group has committed. require_stable (v7) is accepted:
// without transactions every committed offset is stable.
//
// Skipped: v9's member id and epoch (KIP-848 consumer groups) are ignored.

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(9, 0, 9, serveOffsetFetch) }

// fetchGroupOffsets answers one group's part: topics nil means all.
func fetchGroupOffsets(ctx context.Context, node *actors.Node, groupID string, topics map[string][]int32, all bool) ([]kmsg.OffsetFetchResponseGroupTopic, int16) {
	if groupID == "" {
		return nil, kerr.InvalidGroupID.Code
	}
	var tps []group.TopicPartition
	if !all {
		tps = []group.TopicPartition{}
		for t, ps := range topics {
			for _, p := range ps {
				tps = append(tps, group.TopicPartition{Topic: t, Partition: p})
			}
		}
	}
	offs, err := node.CommittedOffsets(ctx, groupID, tps)
	if err != nil {
		return nil, actors.GroupErrorCode(err)
	}
	if all {
		topics = map[string][]int32{}
		for _, tp := range group.SortedPartitions(offs) {
			topics[tp.Topic] = append(topics[tp.Topic], tp.Partition)
		}
	}
	var out []kmsg.OffsetFetchResponseGroupTopic
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic = t
		for _, p := range topics[t] {
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			meta := ""
			if o, ok := offs[group.TopicPartition{Topic: t, Partition: p}]; ok {
				rp.Offset, rp.LeaderEpoch, meta = o.Offset, o.LeaderEpoch, o.Metadata
			}
			rp.Metadata = &meta
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return out, 0
}

func serveOffsetFetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	node := c.server.node
	if req.Version >= 8 {
		for _, g := range req.Groups {
			topics := map[string][]int32{}
			for _, t := range g.Topics {
				topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
			}
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			rg.Topics, rg.ErrorCode = fetchGroupOffsets(ctx, node, g.Group, topics, g.Topics == nil)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil
	}
	topics := map[string][]int32{}
	for _, t := range req.Topics {
		topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
	}
	gts, code := fetchGroupOffsets(ctx, node, req.Group, topics, req.Topics == nil && req.Version >= 2)
	if code != 0 {
		if req.Version >= 2 {
			resp.ErrorCode = code
			return resp, nil
		}
		// v0-1 have no top-level error: every partition carries it.
		for _, t := range slices.Sorted(maps.Keys(topics)) {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t
			for _, p := range topics[t] {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	for _, gt := range gts {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = gt.Topic
		for _, gp := range gt.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
