package gateway

// IncrementalAlterConfigs: versions 0-1.
//
// Topic resources (type 2) only; each operation on a key of configs.go
// (others INVALID_CONFIG naming the key): SET (a null value is
// INVALID_REQUEST), DELETE (reverts to the broker default), APPEND and
// SUBTRACT on the list config cleanup.policy (on any other key
// INVALID_REQUEST, as Kafka). A key given twice in one resource, an unknown
// operation, a resource listed twice: INVALID_REQUEST. Ranges and
// unsupported values (cleanup.policy other than "delete") are
// INVALID_CONFIG. The resource's operations apply together or not at all;
// validate_only checks without storing. A change of max.message.bytes
// applies to the running partitions before the answer. Broker configs are
// read-only: INVALID_REQUEST.

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(44, 0, 1, serveIncrementalAlterConfigs) }

func serveIncrementalAlterConfigs(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	s := c.server
	ctx, cancel := adminTimeout(ctx, 0)
	defer cancel()
	dup := duplicateResources(len(req.Resources), func(i int) resourceKey {
		return resourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
	})
	for i, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if code, msg, ok := s.alterable(dup[i], rr.ResourceType, rr.ResourceName); !ok {
			sr.ErrorCode, sr.ErrorMessage = code, msg
		} else {
			sr.ErrorCode, sr.ErrorMessage = s.incrementalAlter(ctx, rr, req.ValidateOnly)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func requestErr(format string, args ...any) *actors.TopicError {
	return &actors.TopicError{Err: kerr.InvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// checkIncrementalOps validates what does not depend on the current config.
func checkIncrementalOps(ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) *actors.TopicError {
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if seen[op.Name] {
			return requestErr("config %q is given more than once", op.Name)
		}
		seen[op.Name] = true
		k := lookupTopicConfig(op.Name)
		if k == nil {
			return setTopicConfig(nil, op.Name, nil) // the unsupported-key refusal
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return requestErr("config %q: SET with a null value", op.Name)
			}
		case kmsg.IncrementalAlterConfigOpDelete:
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if !k.isList() {
				return requestErr("config %q is not a list: %v is not allowed", op.Name, op.Op)
			}
			if op.Value == nil {
				return requestErr("config %q: %v with a null value", op.Name, op.Op)
			}
		default:
			return requestErr("config %q: unknown operation %d", op.Name, op.Op)
		}
	}
	return nil
}

func (s *Server) incrementalAlter(ctx context.Context, rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) (int16, *string) {
	if terr := checkIncrementalOps(rr.Configs); terr != nil {
		return terr.Err.Code, &terr.Message
	}
	d := s.node.TopicDefaults()
	_, err := s.node.UpdateTopicConfig(ctx, rr.ResourceName, func(c *fluxopb.TopicConfig) error {
		for _, op := range rr.Configs {
			k := lookupTopicConfig(op.Name)
			switch op.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				if terr := setTopicConfig(c, op.Name, op.Value); terr != nil {
					return terr
				}
			case kmsg.IncrementalAlterConfigOpDelete:
				k.clear(c)
			case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
				cur, _ := topicConfigValue(k, c, d)
				list := splitList(cur)
				for _, it := range splitList(*op.Value) {
					if op.Op == kmsg.IncrementalAlterConfigOpAppend {
						if !contains(list, it) {
							list = append(list, it)
						}
						continue
					}
					out := list[:0]
					for _, x := range list {
						if x != it {
							out = append(out, x)
						}
					}
					list = out
				}
				v := strings.Join(list, ",")
				if terr := setTopicConfig(c, op.Name, &v); terr != nil {
					return terr
				}
			}
		}
		return nil
	}, validateOnly)
	if err != nil {
		return s.topicErrCode(ctx, "incremental alter configs", err)
	}
	return 0, nil
}

func splitList(v string) []string {
	var out []string
	for _, it := range strings.Split(v, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}
