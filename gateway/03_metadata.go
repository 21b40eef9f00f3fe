package gateway

// Metadata: versions 0-12.
//
// A single node leads every partition it hosts; in a cluster the answer
// lists the live brokers and each partition's recorded leader, leader
// epoch, replicas and in-sync replicas (gateway/cluster.go). Topics get their UUIDs at creation; v10+ may ask by id.
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
	for _, br := range s.brokers() {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = br.NodeID, br.Host, br.Port
		resp.Brokers = append(resp.Brokers, b)
	}
	clusterID := s.cfg.ClusterID
	resp.ClusterID = &clusterID
	resp.ControllerID = s.controllerID()

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
		l, code := s.leadership(t.Name, p)
		mp.Leader, mp.LeaderEpoch, mp.Replicas, mp.ISR, mp.ErrorCode = l.Leader, l.LeaderEpoch, l.Replicas, l.ISR, code
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
