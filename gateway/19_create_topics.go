package gateway

// CreateTopics: versions 0-7.
//
// Per topic: name validation (INVALID_TOPIC_EXCEPTION), partition count
// (-1 takes the broker's num.partitions; 0, below -1 or above the per-topic
// maximum is INVALID_PARTITIONS), replication factor (-1 or 1 on this single
// node, anything else INVALID_REPLICATION_FACTOR), manual replica assignments
// (accepted only when every partition 0..n-1 is assigned to exactly this
// node, else INVALID_REPLICA_ASSIGNMENT; with a count or factor also given,
// INVALID_REQUEST), configs (see configs.go: unknown keys are INVALID_CONFIG),
// validate_only, TOPIC_ALREADY_EXISTS, a topic listed twice (INVALID_REQUEST).
// v5+ answers carry the partition count, the replication factor and every
// config with its value and source; v7 the topic id. The request's timeout
// bounds the work (REQUEST_TIMED_OUT when partitions have not started in
// time: the topic then exists and finishes starting in the background).
// Skipped: create-topic policies, throttling (throttle is always 0).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(19, 0, 7, serveCreateTopics) }

func serveCreateTopics(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := adminTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	count := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		if count[rt.Topic] > 1 {
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidRequest, "topic %q is listed more than once", rt.Topic)
		} else {
			c.server.createTopic(ctx, req.ValidateOnly, &rt, &st)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) createTopic(ctx context.Context, validateOnly bool, rt *kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic) {
	if err := cluster.ValidateTopicName(rt.Topic); err != nil {
		st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidTopicException, "%v", err)
		return
	}
	parts := rt.NumPartitions
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidRequest, "both a replica assignment and a partition count or replication factor are set; give one or the other")
			return
		}
		if s.node.Clustered() {
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidReplicaAssignment, "manual replica assignment is not supported; give a partition count and replication factor")
			return
		}
		n, ok := s.singleNodeAssignment(rt.ReplicaAssignment)
		if !ok {
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidReplicaAssignment, "every partition 0..n-1 must be assigned exactly once, to node %d alone (single-node cluster)", s.cfg.NodeID)
			return
		}
		parts = n
	} else {
		switch {
		case parts == -1:
			parts = 0 // the node's default
		case parts < 1:
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidPartitions, "partition count %d must be positive, or -1 for the broker default", parts)
			return
		}
		switch rf := rt.ReplicationFactor; {
		case rf == -1:
		case !s.node.Clustered() && rf != 1:
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidReplicationFactor, "replication factor %d cannot be reached: this cluster has 1 broker (use 1 or -1)", rf)
			return
		case rf < 1:
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidReplicationFactor, "replication factor %d must be positive, or -1 for the default", rf)
			return
		}
	}
	rf := max(rt.ReplicationFactor, 0)
	if len(rt.ReplicaAssignment) > 0 {
		rf = 1
	}
	cfg, terr := topicConfigFromKafka(len(rt.Configs), func(i int) (string, *string) { return rt.Configs[i].Name, rt.Configs[i].Value })
	if terr != nil {
		st.ErrorCode, st.ErrorMessage = terr.Err.Code, &terr.Message
		return
	}
	res, err := s.node.CreateTopic(ctx, &fluxopb.CreateTopicRequest{Name: rt.Topic, Partitions: parts, Config: cfg, ValidateOnly: validateOnly, ReplicationFactor: int32(rf)})
	if err != nil {
		st.ErrorCode, st.ErrorMessage = s.topicErrCode(ctx, "create topic", err)
		return
	}
	if res.ErrorCode != 0 {
		msg := res.ErrorMessage
		st.ErrorCode, st.ErrorMessage = int16(res.ErrorCode), &msg
		if res.ErrorCode != int32(kerr.RequestTimedOut.Code) {
			return
		}
	}
	t := res.Topic
	copy(st.TopicID[:], t.Id)
	st.NumPartitions = t.Partitions
	st.ReplicationFactor = int16(max(t.ReplicationFactor, 1))
	d := s.node.TopicDefaults()
	for _, k := range topicConfigKeys {
		v, set := topicConfigValue(k, t.Config, d)
		sc := kmsg.NewCreateTopicsResponseTopicConfig()
		sc.Name, sc.Value = k.name, &v
		sc.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if set {
			sc.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		st.Configs = append(st.Configs, sc)
	}
}

// singleNodeAssignment checks a manual assignment puts partitions 0..n-1
// each on this node alone, and returns n.
func (s *Server) singleNodeAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) (int32, bool) {
	seen := make(map[int32]bool, len(as))
	for _, a := range as {
		if a.Partition < 0 || int(a.Partition) >= len(as) || seen[a.Partition] {
			return 0, false
		}
		seen[a.Partition] = true
		if len(a.Replicas) != 1 || a.Replicas[0] != s.cfg.NodeID {
			return 0, false
		}
	}
	return int32(len(as)), true
}
