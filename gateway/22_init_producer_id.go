package gateway

// InitProducerId: versions 0-5, for idempotent producers only.
//
// A request without a transactional id gets a fresh producer id with epoch 0
// from the node's durable allocator (cluster.ProducerIDs: blocks reserved in
// the coordination store, so an id is never handed out twice, across
// restarts). As in Kafka, the producer id and epoch a v3+ client sends
// (KIP-360, asking to bump its epoch) are ignored without a transactional id:
// it simply gets a new id.
//
// Skipped: transactions. A transactional id gets
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as fatal (the
// same answer as Kafka for a transactional id the client may not use), rather
// than a retriable coordinator error that would make them retry forever.
// v6 (KIP-939, two-phase commit) is not served.
//
// Errors: a node without an allocator answers CLUSTER_AUTHORIZATION_FAILED
// (Kafka's answer when idempotent writes are not allowed); a failing
// coordination store answers COORDINATOR_NOT_AVAILABLE, which clients retry.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
)

func init() { register(22, 0, 5, serveInitProducerID) }

func serveInitProducerID(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	id, err := c.server.node.NextProducerID(ctx)
	switch {
	case errors.Is(err, actors.ErrNoProducerIDs):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	case err != nil:
		c.server.logger.Warn("gateway: allocate producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
