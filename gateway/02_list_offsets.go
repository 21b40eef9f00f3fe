package gateway

// ListOffsets: versions 1-8.
//
// Timestamps: -2 earliest (the log start), -1 latest (the high watermark,
// which is also the last stable offset, so read_committed answers the same),
// -3 max timestamp (v7+: the first record carrying the largest timestamp), -4
// earliest local (v8+: the log start; there is no tiered storage), otherwise
// the first record with a timestamp >= the one asked for (offset -1 when
// there is none). The leader epoch returned (v4+) is the partition's current
// epoch; current_leader_epoch (v4+) is checked as Fetch does. Skipped: v0
// (old-style offset lists, no client still needs them), v9+ (-5 latest
// tiered, KIP-1005; v10 timeout), replica_id (no followers).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(2, 1, 8, serveListOffsets) }

func serveListOffsets(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	node := c.server.node
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = -1, -1, -1
			sp.ErrorCode = listOffset(ctx, node, req.Version, rt.Topic, &rp, &sp)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// listOffset fills sp and returns its error code.
func listOffset(ctx context.Context, node *actors.Node, version int16, topic string, rp *kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	state, ok := node.Partition(topic, rp.Partition)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code
	}
	if version >= 4 {
		if code := checkEpoch(rp.CurrentLeaderEpoch, state.LeaderEpoch); code != 0 {
			return code
		}
	}
	ts := rp.Timestamp
	switch {
	case ts == -3 && version < 7, ts == -4 && version < 8:
		return kerr.UnsupportedVersion.Code
	case ts == -4:
		ts = -2
	}
	res, err := node.ListOffsets(ctx, &fluxopb.ListOffsetsRequest{Topic: topic, Partition: rp.Partition, Timestamp: ts})
	if err != nil {
		return kerr.RequestTimedOut.Code
	}
	if res.ErrorCode != 0 {
		return int16(res.ErrorCode)
	}
	sp.Offset, sp.Timestamp = res.Offset, res.Timestamp
	if res.Offset >= 0 {
		sp.LeaderEpoch = state.LeaderEpoch
	}
	return 0
}
