package gateway

// DescribeCluster: versions 0-2.
//
// This node is the one broker and the controller. Endpoint type (v1) 1
// (brokers) lists it; 2 (controllers) is UNSUPPORTED_ENDPOINT_TYPE, as a
// Kafka broker answers. v2's include_fenced_brokers changes nothing: no
// broker is ever fenced. Skipped: authorized operations (no ACLs yet:
// reported as -2147483648, "not requested"), rack (null).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(60, 0, 2, serveDescribeCluster) }

func serveDescribeCluster(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	s := c.server
	resp.EndpointType = req.EndpointType
	resp.ClusterAuthorizedOperations = -2147483648
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode, resp.ErrorMessage = codeMsg(kerr.UnsupportedEndpointType, "endpoint type %d is not served by a broker; ask for brokers (1)", req.EndpointType)
		return resp, nil
	}
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.controllerID()
	for _, br := range s.brokers() {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port = br.NodeID, br.Host, br.Port
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp, nil
}
