package gateway

// LeaveGroup: versions 0-5. Before v3 one member, whose error is the
// top-level error; from v3 a batch of members (KIP-345: a static member may
// leave by instance id alone), each with its own error; the reason (v5) goes
// into the member-left event.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(13, 0, 5, serveLeaveGroup) }

func serveLeaveGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	l := &group.Leave{}
	if req.Version < 3 {
		l.Members = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			lm := group.LeaveMember{MemberID: m.MemberID}
			if m.InstanceID != nil {
				lm.InstanceID = *m.InstanceID
			}
			if m.Reason != nil {
				lm.Reason = *m.Reason
			}
			l.Members = append(l.Members, lm)
		}
	}
	res, err := c.server.node.LeaveGroup(ctx, req.Group, l)
	if err != nil {
		resp.ErrorCode = actors.GroupErrorCode(err)
		return resp, nil
	}
	code := func(err error) int16 {
		if err == nil {
			return 0
		}
		return err.(*kerr.Error).Code
	}
	if req.Version < 3 {
		resp.ErrorCode = code(res.Members[0])
		return resp, nil
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, code(res.Members[i])
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
