package gateway

// OffsetForLeaderEpoch: versions 0-4.
//
// For each partition, where the requested leader epoch ended in our log, as
// Kafka's leader-epoch cache answers it: the current epoch ends at the log
// end offset; an older epoch ends where the next epoch with data starts,
// reported with the largest epoch we know at or below the requested one; an
// epoch older than all we know is reported with the start of the first
// known epoch (the data before it is gone); an epoch newer than ours, or -1,
// is UNDEFINED (leader epoch -1, end offset -1). The history is the
// partition checkpoint's epoch list. current_leader_epoch (v2+) is checked
// as Fetch does. Skipped: replica_id (v3+; no followers, every caller is
// treated as a consumer, which on one node changes nothing).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(23, 0, 4, serveOffsetForLeaderEpoch) }

func serveOffsetForLeaderEpoch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	node := c.server.node
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			state, ok := node.Partition(rt.Topic, rp.Partition)
			switch {
			case !ok:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case req.Version >= 2 && checkEpoch(rp.CurrentLeaderEpoch, state.LeaderEpoch) != 0:
				sp.ErrorCode = checkEpoch(rp.CurrentLeaderEpoch, state.LeaderEpoch)
			default:
				end, err := node.EndOffsetForEpoch(rt.Topic, rp.Partition, rp.LeaderEpoch)
				if err != nil {
					sp.ErrorCode = err.(*kerr.Error).Code
				} else {
					sp.LeaderEpoch, sp.EndOffset = end.LeaderEpoch, end.EndOffset
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
