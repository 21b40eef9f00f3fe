package gateway

// JoinGroup: versions 0-9.
//
// The request goes to the group's coordinator actor (actors/group has the
// protocol: KIP-394 MEMBER_ID_REQUIRED from v4, static membership KIP-345
// from v5) and the answer waits for the join phase to end. v0 has no
// rebalance timeout: the session timeout serves as both, as in Kafka. The
// protocol type and name are returned from v7; the reason (v8) is logged in
// the member-left event only when the member leaves.
//
// Skipped: skip_assignment (v9, KIP-814) is always false: a static leader
// that rejoins triggers a rebalance and assigns again.

import (
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
)

func init() { register(11, 0, 9, serveJoinGroup) }

func serveJoinGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	resp.MemberID = req.MemberID
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	j := &group.Join{
		Version: req.Version, MemberID: req.MemberID, ClientID: c.clientID, ClientHost: clientHost(c),
		ProtocolType:     req.ProtocolType,
		SessionTimeout:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
	}
	if req.Version == 0 {
		j.RebalanceTimeout = j.SessionTimeout
	}
	if req.InstanceID != nil {
		j.InstanceID = *req.InstanceID
	}
	if req.Reason != nil {
		j.Reason = *req.Reason
	}
	for _, p := range req.Protocols {
		j.Protocols = append(j.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	res, err := c.server.node.JoinGroup(ctx, req.Group, j)
	if err != nil {
		resp.ErrorCode = actors.GroupErrorCode(err)
		return resp, nil
	}
	if res.Err != nil {
		resp.ErrorCode = res.Err.(*kerr.Error).Code
		resp.MemberID = res.MemberID
		return resp, nil
	}
	resp.Generation, resp.LeaderID, resp.MemberID = res.Generation, res.Leader, res.MemberID
	resp.Protocol = &res.Protocol
	if req.Version >= 7 {
		resp.ProtocolType = &res.ProtocolType
	}
	for _, m := range res.Members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
		if m.InstanceID != "" {
			id := m.InstanceID
			rm.InstanceID = &id
		}
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}

// clientHost is the client's address as Kafka shows it ("/127.0.0.1").
func clientHost(c *conn) string {
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return "/" + c.nc.RemoteAddr().String()
	}
	return "/" + host
}
