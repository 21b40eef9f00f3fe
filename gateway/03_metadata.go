package gateway

// Metadata: versions 0-12.
//
// This node leads every partition it hosts (single node; the cluster issue
// brings replicas). Topics get their UUIDs at creation; v10+ may ask by id.
// Unknown topics are created when the request allows it (v4+ flag; always
// before v4) and the broker's auto.create.topics.enable is on, with the
// default partition count, as Kafka does. Skipped: authorized operations
// (no ACLs yet: reported as -2147483648, "not requested"), v13 (top-level
// error code, KIP-1102).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(3, 0, 12, serveMetadata) }

func serveMetadata(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	s := c.server
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, s.host, s.port
	resp.Brokers = append(resp.Brokers, b)
	clusterID := s.cfg.ClusterID
	resp.ClusterID = &clusterID
	resp.ControllerID = s.cfg.NodeID

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		topics, _ := s.node.ListTopics(ctx)
		for _, t := range topics {
			resp.Topics = append(resp.Topics, s.metadataTopic(t))
		}
		return resp, nil
	}
	autoCreate := !s.cfg.DisableAutoCreate && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		var t *fluxopb.TopicMetadata
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
			t = s.node.Topic(name)
		} else if rt.TopicID != [16]byte{} {
			t = s.node.TopicByID(rt.TopicID)
		}
		if t == nil && name != "" && autoCreate {
			t = s.autoCreate(ctx, name)
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if name != "" && cluster.ValidateTopicName(name) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, s.metadataTopic(t))
	}
	return resp, nil
}

// autoCreate creates name with the default partition count and returns it,
// or nil if it cannot (bad name, or a creation race another caller won,
// in which case the existing topic is returned).
func (s *Server) autoCreate(ctx context.Context, name string) *fluxopb.TopicMetadata {
	if cluster.ValidateTopicName(name) != nil {
		return nil
	}
	res, err := s.node.CreateTopic(ctx, &fluxopb.CreateTopicRequest{Name: name})
	if err != nil {
		s.logger.Warn("gateway: auto-create topic", "topic", name, "err", err)
		return nil
	}
	if code := int16(res.ErrorCode); code != 0 && code != kerr.TopicAlreadyExists.Code && code != kerr.RequestTimedOut.Code {
		return nil
	}
	return s.node.Topic(name)
}

func (s *Server) metadataTopic(t *fluxopb.TopicMetadata) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	copy(mt.TopicID[:], t.Id)
	for p := int32(0); p < t.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.Leader = s.cfg.NodeID
		mp.Replicas = []int32{s.cfg.NodeID}
		mp.ISR = []int32{s.cfg.NodeID}
		if st, ok := s.node.Partition(t.Name, p); ok {
			mp.LeaderEpoch = st.LeaderEpoch
		} else {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
