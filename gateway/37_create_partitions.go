package gateway

// CreatePartitions: versions 0-3.
//
// Grows a topic to the requested count (which must exceed the current one:
// INVALID_PARTITIONS otherwise, or above the per-topic maximum), starting the
// new partitions before answering; validate_only only checks. A manual
// assignment must give exactly one entry per new partition, each this node
// alone (INVALID_REPLICA_ASSIGNMENT otherwise). A topic listed twice is
// INVALID_REQUEST. The request's timeout bounds the work (REQUEST_TIMED_OUT
// when the new partitions have not started in time; they finish in the
// background). Skipped: throttling (throttle is always 0).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(37, 0, 3, serveCreatePartitions) }

func serveCreatePartitions(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := adminTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	s := c.server
	count := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		switch {
		case count[rt.Topic] > 1:
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidRequest, "topic %q is listed more than once", rt.Topic)
		case rt.Assignment != nil && !s.validNewAssignment(rt):
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidReplicaAssignment, "the assignment must list each new partition once, on node %d alone (single-node cluster)", s.cfg.NodeID)
		default:
			if _, err := s.node.AddPartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly); err != nil {
				st.ErrorCode, st.ErrorMessage = s.topicErrCode(ctx, "create partitions", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) validNewAssignment(rt kmsg.CreatePartitionsRequestTopic) bool {
	t := s.node.Topic(rt.Topic)
	if t == nil {
		return true // AddPartitions reports the unknown topic
	}
	if int32(len(rt.Assignment)) != rt.Count-t.Partitions {
		return false
	}
	for _, a := range rt.Assignment {
		if len(a.Replicas) != 1 || a.Replicas[0] != s.cfg.NodeID {
			return false
		}
	}
	return true
}
