package gateway

// FindCoordinator: versions 0-6; v4+ batches keys (KIP-699).
//
// A group's coordinator is the leader of its __consumer_offsets partition
// (this broker on a single node); COORDINATOR_NOT_AVAILABLE while that
// partition has no live leader. An empty
// group id is INVALID_GROUP_ID.
//
// Skipped: transactions. A transactional id (key type 1) gets
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, fatal for clients (the same answer
// InitProducerId gives), rather than a retriable error they would loop on;
// share groups (key type 2, v6) get INVALID_REQUEST.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(10, 0, 6, serveFindCoordinator) }

func serveFindCoordinator(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	s := c.server
	find := func(key string) (code int16, node, port int32, host string) {
		switch {
		case req.CoordinatorType == 1:
			return kerr.TransactionalIDAuthorizationFailed.Code, -1, -1, ""
		case req.CoordinatorType != 0:
			return kerr.InvalidRequest.Code, -1, -1, ""
		case key == "":
			return kerr.InvalidGroupID.Code, -1, -1, ""
		}
		id, ok := s.node.GroupCoordinatorNode(key)
		if !ok {
			return kerr.CoordinatorNotAvailable.Code, -1, -1, ""
		}
		b, live := s.broker(id)
		if !live {
			return kerr.CoordinatorNotAvailable.Code, -1, -1, ""
		}
		return 0, b.NodeID, b.Port, b.Host
	}
	if req.Version < 4 {
		code, node, port, host := find(req.CoordinatorKey)
		resp.ErrorCode, resp.NodeID, resp.Port, resp.Host = code, node, port, host
		if code != 0 {
			msg := kerr.ErrorForCode(code).Error()
			resp.ErrorMessage = &msg
		}
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key = key
		co.ErrorCode, co.NodeID, co.Port, co.Host = find(key)
		if co.ErrorCode != 0 {
			msg := kerr.ErrorForCode(co.ErrorCode).Error()
			co.ErrorMessage = &msg
		}
		resp.Coordinators = append(resp.Coordinators, co)
	}
	return resp, nil
}
