package gateway

// AlterConfigs: versions 0-2.
//
// Non-incremental: for a topic (type 2) the request's set replaces the
// topic's whole config; keys not given revert to the broker defaults. Keys
// are those of configs.go (others INVALID_CONFIG naming the key; a key
// given twice INVALID_CONFIG; ranges INVALID_CONFIG), unknown topics
// UNKNOWN_TOPIC_OR_PARTITION. validate_only checks without storing. A
// change of max.message.bytes applies to the running partitions before the
// answer. Broker configs (type 4) are read-only: INVALID_REQUEST; other
// resource types INVALID_REQUEST; a resource listed twice INVALID_REQUEST.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(33, 0, 2, serveAlterConfigs) }

func serveAlterConfigs(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	s := c.server
	ctx, cancel := adminTimeout(ctx, 0)
	defer cancel()
	dup := duplicateResources(len(req.Resources), func(i int) resourceKey {
		return resourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
	})
	for i, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if code, msg, ok := s.alterable(dup[i], rr.ResourceType, rr.ResourceName); !ok {
			sr.ErrorCode, sr.ErrorMessage = code, msg
		} else {
			sr.ErrorCode, sr.ErrorMessage = s.replaceTopicConfig(ctx, rr, req.ValidateOnly)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// alterableResource refuses resources other than topics.
func (s *Server) alterableResource(typ kmsg.ConfigResourceType, name string) (int16, *string, bool) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return 0, nil, true
	case kmsg.ConfigResourceTypeBroker:
		code, msg := codeMsg(kerr.InvalidRequest, "broker configs are read-only in Fluxo; they are set at startup")
		return code, msg, false
	}
	code, msg := codeMsg(kerr.InvalidRequest, "resource type %v is not supported; Fluxo alters topic configs (2)", typ)
	return code, msg, false
}

func (s *Server) replaceTopicConfig(ctx context.Context, rr kmsg.AlterConfigsRequestResource, validateOnly bool) (int16, *string) {
	cfg, terr := topicConfigFromKafka(len(rr.Configs), func(i int) (string, *string) { return rr.Configs[i].Name, rr.Configs[i].Value })
	if terr != nil {
		return terr.Err.Code, &terr.Message
	}
	_, err := s.node.UpdateTopicConfig(ctx, rr.ResourceName, func(c *fluxopb.TopicConfig) error {
		proto.Reset(c)
		proto.Merge(c, cfg)
		return nil
	}, validateOnly)
	if err != nil {
		return s.topicErrCode(ctx, "alter configs", err)
	}
	return 0, nil
}
