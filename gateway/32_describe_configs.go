package gateway

// DescribeConfigs: versions 0-4.
//
// Topic resources (type 2): every setting Fluxo implements (configs.go) with
// its effective value; source DYNAMIC_TOPIC_CONFIG when the topic sets it,
// else DEFAULT_CONFIG (v0: is_default); none is read-only or sensitive.
// Synonyms (v1+, when asked): the topic's own value, then the broker
// default under its broker key (log.retention.ms, ...). Types and
// documentation (v3+, documentation when asked). An unknown topic is
// UNKNOWN_TOPIC_OR_PARTITION, an invalid name INVALID_TOPIC_EXCEPTION.
// Broker resources (type 4, name "" or this node's id): the broker defaults
// num.partitions, log.retention.ms, log.retention.bytes, message.max.bytes,
// log.cleanup.policy and auto.create.topics.enable, all read-only with
// source DEFAULT_CONFIG. Another broker id, or any other resource type
// (broker loggers, client metrics, groups) is INVALID_REQUEST. Names asked
// for that we do not have are left out, as Kafka does.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/cluster"
)

func init() { register(32, 0, 4, serveDescribeConfigs) }

func serveDescribeConfigs(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	s := c.server
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		wanted := func(name string) bool { return len(rr.ConfigNames) == 0 || contains(rr.ConfigNames, name) }
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			s.describeTopicConfigs(req, rr.ResourceName, wanted, &sr)
		case kmsg.ConfigResourceTypeBroker:
			if !s.isThisBroker(rr.ResourceName) {
				sr.ErrorCode, sr.ErrorMessage = codeMsg(kerr.InvalidRequest, "broker %q is not this node (%d)", rr.ResourceName, s.cfg.NodeID)
				break
			}
			for _, bc := range s.brokerConfigs() {
				if !wanted(bc.name) {
					continue
				}
				rc := kmsg.NewDescribeConfigsResponseResourceConfig()
				v := bc.value
				rc.Name, rc.Value, rc.ReadOnly = bc.name, &v, true
				rc.Source = kmsg.ConfigSourceDefaultConfig
				rc.IsDefault = true
				if req.IncludeSynonyms {
					syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
					syn.Name, syn.Value, syn.Source = bc.name, &v, kmsg.ConfigSourceDefaultConfig
					rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
				}
				rc.ConfigType = bc.typ
				if req.IncludeDocumentation {
					doc := bc.doc
					rc.Documentation = &doc
				}
				sr.Configs = append(sr.Configs, rc)
			}
		default:
			sr.ErrorCode, sr.ErrorMessage = codeMsg(kerr.InvalidRequest, "resource type %v is not supported; Fluxo describes topics (2) and brokers (4)", rr.ResourceType)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func (s *Server) describeTopicConfigs(req *kmsg.DescribeConfigsRequest, name string, wanted func(string) bool, sr *kmsg.DescribeConfigsResponseResource) {
	if err := cluster.ValidateTopicName(name); err != nil {
		sr.ErrorCode, sr.ErrorMessage = codeMsg(kerr.InvalidTopicException, "%v", err)
		return
	}
	t := s.node.Topic(name)
	if t == nil {
		sr.ErrorCode, sr.ErrorMessage = codeMsg(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		return
	}
	d := s.node.TopicDefaults()
	for _, k := range topicConfigKeys {
		if !wanted(k.name) {
			continue
		}
		v, set := topicConfigValue(k, t.Config, d)
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name, rc.Value = k.name, &v
		rc.IsDefault = !set
		rc.Source = kmsg.ConfigSourceDefaultConfig
		if set {
			rc.Source = kmsg.ConfigSourceDynamicTopicConfig
		}
		if req.IncludeSynonyms {
			if set {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = k.name, &v, kmsg.ConfigSourceDynamicTopicConfig
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
			}
			def := k.def(d)
			syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			syn.Name, syn.Value, syn.Source = k.brokerName, &def, kmsg.ConfigSourceDefaultConfig
			rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
		}
		rc.ConfigType = k.typ
		if req.IncludeDocumentation {
			doc := k.doc
			rc.Documentation = &doc
		}
		sr.Configs = append(sr.Configs, rc)
	}
}
