package actors

import (
	"context"
	"errors"
)

// ProducerIDs hands out producer ids for idempotent producers
// (InitProducerId). Every id it returns must be new: never returned before,
// by this node or another using the same coordination store, across
// restarts. cluster.ProducerIDs is the durable implementation.
type ProducerIDs interface {
	Next(ctx context.Context) (int64, error)
}

// ErrNoProducerIDs: the node was started without a producer id allocator.
var ErrNoProducerIDs = errors.New("no producer id allocator configured")

// NextProducerID returns a fresh producer id (its epoch starts at 0).
func (n *Node) NextProducerID(ctx context.Context) (int64, error) {
	if n.cfg.ProducerIDs == nil {
		return 0, ErrNoProducerIDs
	}
	return n.cfg.ProducerIDs.Next(ctx)
}
