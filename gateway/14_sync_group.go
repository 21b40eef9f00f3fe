package gateway

// SyncGroup: versions 0-5.
//
// Followers wait for the leader's assignment; the leader's SyncGroup
// persists the generation's assignment (one journal event) before anyone is
// answered. group_instance_id from v3; from v5 the protocol type and name,
// when sent, must match the group's (INCONSISTENT_GROUP_PROTOCOL) and are
// returned.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(14, 0, 5, serveSyncGroup) }

func serveSyncGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.MemberAssignment = []byte{}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	s := &group.Sync{MemberID: req.MemberID, Generation: req.Generation, ProtocolType: req.ProtocolType, Protocol: req.Protocol}
	if req.InstanceID != nil {
		s.InstanceID = *req.InstanceID
	}
	if len(req.GroupAssignment) > 0 {
		s.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			s.Assignments[a.MemberID] = a.MemberAssignment
		}
	}
	res, err := c.server.node.SyncGroup(ctx, req.Group, s)
	if err != nil {
		resp.ErrorCode = actors.GroupErrorCode(err)
		return resp, nil
	}
	if res.Err != nil {
		resp.ErrorCode = res.Err.(*kerr.Error).Code
		return resp, nil
	}
	resp.MemberAssignment = res.Assignment
	if req.Version >= 5 {
		resp.ProtocolType, resp.Protocol = &res.ProtocolType, &res.Protocol
	}
	return resp, nil
}
