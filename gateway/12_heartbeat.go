package gateway

// Heartbeat: versions 0-4 (group_instance_id from v3). Answers
// REBALANCE_IN_PROGRESS while the group prepares a rebalance, which is how
// members learn to rejoin.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(12, 0, 4, serveHeartbeat) }

func serveHeartbeat(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	h := &group.Heartbeat{MemberID: req.MemberID, Generation: req.Generation}
	if req.InstanceID != nil {
		h.InstanceID = *req.InstanceID
	}
	res, err := c.server.node.Heartbeat(ctx, req.Group, h)
	switch {
	case err != nil:
		resp.ErrorCode = actors.GroupErrorCode(err)
	case res.Err != nil:
		resp.ErrorCode = res.Err.(*kerr.Error).Code
	}
	return resp, nil
}
